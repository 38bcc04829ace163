"""No views: the example is about the worker side."""

from typing import Any

urlpatterns: list[Any] = []
