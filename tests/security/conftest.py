"""Fixtures for the security tests: a CA of the test's own and a TLS Redis it signed."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from .tlsserver import Pki, TlsServer


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if shutil.which("openssl") is None:
        pytest.skip("the TLS tests need the openssl command")
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def tls_server(pki: Pki) -> Iterator[TlsServer]:
    with TlsServer(pki=pki) as server:
        yield server
