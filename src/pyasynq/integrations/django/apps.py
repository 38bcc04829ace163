"""The Django app: ``INSTALLED_APPS = [..., "pyasynq.integrations.django"]``."""

from __future__ import annotations

from django.apps import AppConfig


class PyasynqConfig(AppConfig):
    """Registers the management commands and drops the cached client when the
    ``PYASYNQ`` setting changes (``override_settings`` in tests)."""

    name = "pyasynq.integrations.django"
    label = "pyasynq"
    verbose_name = "pyasynq"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from .settings import reset_client

        def on_change(setting: str, **kwargs: object) -> None:
            if setting == "PYASYNQ":
                reset_client()

        setting_changed.connect(on_change, weak=False, dispatch_uid="pyasynq-settings")
