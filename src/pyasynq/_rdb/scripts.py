"""The Lua scripts, one file per operation in ``lua/``, loaded once from package data."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources


@cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua``."""
    try:
        return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text("utf-8")
    except FileNotFoundError:
        raise KeyError(f"no Lua script named {name!r}") from None


def names() -> list[str]:
    """Every script shipped with pyasynq."""
    lua = resources.files(__package__).joinpath("lua")
    return sorted(p.name[:-4] for p in lua.iterdir() if p.name.endswith(".lua"))


@cache
def sha(name: str) -> str:
    """SHA1 of the script, the name Redis knows it by for EVALSHA."""
    return hashlib.sha1(source(name).encode("utf-8")).hexdigest()
