"""The reference cannot drift from the code: the CLI page is generated from the parsers,
every configuration field is documented, and every public name has a docstring."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pyasynq
from pyasynq.options import Options

ROOT = Path(__file__).resolve().parents[2]
CONFIG_PAGE = ROOT / "docs" / "configuration.md"


def _documented_fields(page: Path) -> set[str]:
    """Names in the first column of the page's tables: | `name` | ..."""
    return set(re.findall(r"^\| `([a-z_]+)`", page.read_text(encoding="utf-8"), re.M))


def test_cli_reference_is_generated_from_the_parsers() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cli_reference.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_cli_reference_lists_every_flag() -> None:
    from pyasynq.cli import build_parser

    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    parsers = [build_parser()]
    flags = set()
    while parsers:
        p = parsers.pop()
        for action in p._actions:
            if not isinstance(action, argparse._HelpAction):
                flags.update(action.option_strings)
            choices = getattr(action, "choices", None)
            if isinstance(choices, dict):
                parsers.extend(choices.values())
    missing = sorted(f for f in flags if f"`{f}`" not in page)
    assert not missing, f"flags missing from docs/cli.md: {missing}"


@pytest.mark.parametrize("config", [pyasynq.ServerConfig, pyasynq.SchedulerConfig])
def test_every_config_field_is_in_the_configuration_reference(config: type) -> None:
    fields = {f.name for f in dataclasses.fields(config)}
    missing = sorted(fields - _documented_fields(CONFIG_PAGE))
    assert not missing, f"{config.__name__} fields missing from docs/configuration.md: {missing}"


def test_environment_variables_are_in_the_configuration_reference() -> None:
    text = CONFIG_PAGE.read_text(encoding="utf-8")
    for var in ("PYASYNQ_REDIS_URL", "REDIS_URL"):
        assert f"`{var}`" in text


def _public_members(cls: type) -> list[tuple[str, object]]:
    out = []
    for name, value in vars(cls).items():
        if name.startswith("_") or name in getattr(cls, "__dataclass_fields__", {}):
            continue
        fn = value.__func__ if isinstance(value, staticmethod | classmethod) else value
        if inspect.isfunction(fn) or isinstance(fn, property):
            out.append((name, fn))
    return out


def _own_doc(obj: object) -> str:
    """The object's own docstring: not inherited, not the one dataclasses make up."""
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__") or ""
        if dataclasses.is_dataclass(obj) and doc.startswith(f"{obj.__name__}("):
            return ""
        return doc.strip()
    return (getattr(obj, "__doc__", None) or "").strip()


PUBLIC_MODULES = [
    "pyasynq",
    "pyasynq.metrics",
    "pyasynq.embedded",
    "pyasynq.errors",
    "pyasynq.scheduler",
    "pyasynq.web",
]


def test_every_public_name_has_a_docstring() -> None:
    import importlib

    missing = []
    names = [
        (module, name)
        for module in PUBLIC_MODULES
        for name in importlib.import_module(module).__all__
        if name[0].isupper() or callable(getattr(importlib.import_module(module), name))
    ]
    for module, name in names:
        obj = getattr(importlib.import_module(module), name)
        if not inspect.isclass(obj) and not callable(obj):
            continue
        if not _own_doc(obj):
            missing.append(f"{module}.{name}")
        if inspect.isclass(obj) and not issubclass(obj, BaseException | int | str):
            for member, value in _public_members(obj):
                own = value.__doc__ if not isinstance(value, property) else value.fget.__doc__
                if not (own or "").strip():
                    missing.append(f"{module}.{name}.{member}")
    assert not missing, f"public names without a docstring: {missing}"


@pytest.mark.parametrize("method", [pyasynq.Client.enqueue, pyasynq.AsyncClient.enqueue])
def test_enqueue_docstring_names_every_option(method: object) -> None:
    doc = inspect.getdoc(method) or ""
    options = [f.name for f in dataclasses.fields(Options)]
    missing = [o for o in options if not re.search(rf"^\s*{o}\b.*:", doc, re.M)]
    assert not missing, f"enqueue's docstring does not describe: {missing}"
