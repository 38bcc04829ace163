"""Integrations with other libraries, one leaf module each, each an optional extra:
``otel`` (OpenTelemetry), ``sqlalchemy``, ``django``, ``fastapi`` (FastAPI/Starlette).
They use only pyasynq's public API and their own framework; the core never imports them."""
