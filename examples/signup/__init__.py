"""The seed's sign-up service: an HTTP API that creates users and a standalone worker
that sends their verification emails through pyasynq. See README.md beside this file."""
