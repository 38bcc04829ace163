"""TLS with a CA the test made: ``rediss://...?ssl_ca_certs=`` works for the client, the
worker and the inspector; a server certificate from another CA, or for another host name,
fails closed at once with a message that says what to fix; and no URL argument can turn
verification off."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from pyasynq import AsyncClient, BrokerError, Client, Inspector, Server, Task

from .tlsserver import Pki, TlsServer

pytestmark = pytest.mark.single_node("runs its own TLS server")


def test_client_worker_and_inspector_work_over_tls_with_the_right_ca(
    tls_server: TlsServer,
) -> None:
    url = tls_server.tls_url()
    with Client(url) as c:
        c.enqueue(Task("tls:job", b"over tls"), queue="tls", task_id="one")
    seen = threading.Event()
    got: list[bytes | None] = []

    def handler(task: Task) -> None:
        got.append(task.payload)
        seen.set()

    server = Server(url, queues={"tls": 1}, task_check_interval=0.05, shutdown_timeout=1)
    server.start(handler)
    try:
        assert seen.wait(10), "the worker did not run the task over TLS"
    finally:
        server.shutdown()
    assert got == [b"over tls"]
    with Inspector(url) as ins:
        info = ins.get_queue_info("tls")
        assert info.processed >= 1


async def test_the_async_client_works_over_tls(tls_server: TlsServer) -> None:
    async with AsyncClient(tls_server.tls_url()) as ac:
        infos = await asyncio.gather(
            *(ac.enqueue(Task("tls:async"), queue="tls-async") for _ in range(20))
        )
        lane = ac._broker._lane
        assert lane is not None and lane._wire is not None  # the wire on the TLS transport
    assert [i.queue for i in infos] == ["tls-async"] * 20


def _refused(url: str) -> tuple[str, float]:
    start = time.monotonic()
    with pytest.raises(BrokerError) as err, Client(url) as c:
        c.enqueue(Task("t"))
    return str(err.value), time.monotonic() - start


def test_a_certificate_from_another_ca_fails_closed(tls_server: TlsServer, pki: Pki) -> None:
    message, took = _refused(tls_server.tls_url(ca=pki.other_ca))
    assert took < 3, took  # verification is not retried
    assert "refused the server's certificate" in message
    assert "ssl_ca_certs=/path/to/ca.pem" in message


def test_the_system_cas_do_not_trust_a_private_ca(tls_server: TlsServer) -> None:
    message, _ = _refused(f"rediss://localhost:{tls_server.tls_port}/0")
    assert "not signed by a CA this client trusts" in message


def test_a_certificate_for_another_host_name_fails_closed(tls_server: TlsServer) -> None:
    # The certificate names DNS:localhost only.
    message, took = _refused(tls_server.tls_url(host="127.0.0.1"))
    assert took < 3, took
    assert "not valid for '127.0.0.1'" in message
    assert "host name the certificate lists" in message


def test_the_worker_and_inspector_fail_closed_too(tls_server: TlsServer, pki: Pki) -> None:
    url = tls_server.tls_url(ca=pki.other_ca)
    with pytest.raises(BrokerError, match="refused the server's certificate"):
        Server(url, queues={"tls": 1}).start(lambda t: None)
    with Inspector(url) as ins, pytest.raises(BrokerError, match="refused the server's cert"):
        ins.queues()


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("ssl_cert_reqs=none", "always verifies the server's certificate"),
        ("ssl_cert_reqs=optional", "always verifies the server's certificate"),
        ("ssl_check_hostname=false", "always checks that the certificate names the host"),
        ("ssl_ca_certs=/nonexistent/ca.pem", "no such file or directory"),
        ("ssl_verify=0", "unknown TLS argument 'ssl_verify'"),
    ],
)
def test_no_url_argument_turns_verification_off(
    tls_server: TlsServer, query: str, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        Client(f"rediss://localhost:{tls_server.tls_port}/0?{query}")


def test_tls_arguments_on_a_plain_url_are_refused(pki: Pki) -> None:
    with pytest.raises(ValueError, match="needs TLS: use rediss://"):
        Client(f"redis://localhost:6379/0?ssl_ca_certs={pki.ca}")


def test_a_client_certificate_can_be_given(tls_server: TlsServer, pki: Pki) -> None:
    # The server does not ask for one; the point is that the URL carries the files through.
    url = tls_server.tls_url() + f"&ssl_certfile={pki.dir / 'server.pem'}"
    url += f"&ssl_keyfile={pki.dir / 'server.key'}"
    with Client(url) as c:
        assert c.enqueue(Task("t"), queue="mtls").queue == "mtls"
