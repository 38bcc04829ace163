"""A CA, certificates and a TLS redis-server made by the tests (openssl CLI, loopback)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from topology import SingleServer, _log_tail, _Spec, _start_all, free_port

from pyasynq.embedded import find_server_binary


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@dataclass
class Pki:
    """A CA and a server certificate for DNS:localhost only (so 127.0.0.1 is the wrong
    name), plus a second CA that signed nothing of ours."""

    dir: Path

    def __post_init__(self) -> None:
        d = self.dir
        d.mkdir(parents=True, exist_ok=True)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for ca in ("ca", "other-ca"):
            _openssl("req", "-x509", *ec, "-days", "2", "-subj", f"/CN=pyasynq test {ca}",
                     "-keyout", f"{ca}.key", "-out", f"{ca}.pem", cwd=d)  # fmt: skip
        _openssl("req", *ec, "-subj", "/CN=localhost", "-keyout", "server.key",
                 "-out", "server.csr", cwd=d)  # fmt: skip
        (d / "ext.cnf").write_text("subjectAltName=DNS:localhost\n")
        _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem",
                 cwd=d)  # fmt: skip

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def other_ca(self) -> Path:
        return self.dir / "other-ca.pem"


@dataclass
class TlsServer(SingleServer):
    """A redis-server with a plain loopback port (for the start-up probe and the test's
    own checks) and a TLS port whose certificate ``pki`` signed."""

    pki: Pki | None = None
    tls_port: int = field(default=0)

    def start(self) -> None:
        assert self.pki is not None
        d = self.dir / "r0"
        d.mkdir()
        pki = self.pki
        self.tls_port = free_port()

        def args(port: int) -> list[str]:
            return ["--bind", "127.0.0.1", "--port", str(port), "--dir", str(d), "--save", "",
                    "--appendonly", "no", "--tls-port", str(self.tls_port),
                    "--tls-cert-file", str(pki.dir / "server.pem"),
                    "--tls-key-file", str(pki.dir / "server.key"),
                    "--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "no"]  # fmt: skip

        try:
            self.nodes.extend(
                _start_all(find_server_binary(), [_Spec(args, d / "log", "master", "redis")])
            )
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}{_log_tail(d / 'log')}") from exc

    def tls_url(self, host: str = "localhost", ca: Path | None = None, auth: str = "") -> str:
        assert self.pki is not None
        cafile = ca or self.pki.ca
        base = f"rediss://{auth + '@' if auth else ''}{host}:{self.tls_port}/0"
        return f"{base}?ssl_ca_certs={cafile}"
