"""The only package that knows Redis: key names, the protobuf codec, the Lua scripts and
the mapping of their replies to values and errors. Nothing here performs I/O; the brokers
in ``pyasynq._async`` / ``pyasynq._sync`` run what this package builds."""
