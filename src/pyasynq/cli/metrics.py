"""``pyasynq metrics --port P``: serve asynq's queue metrics to Prometheus, computed
from Redis at each scrape (the names of Go asynq's x/metrics exporter)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from . import output as out
from .common import UsageError


def register(sub: Any) -> None:
    p = sub.add_parser("metrics", help="serve the queue metrics for Prometheus at /metrics")
    p.add_argument("--port", type=int, required=True, help="port to listen on")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")  # fmt: skip
    p.set_defaults(func=run)


@out.command
def run(args: argparse.Namespace) -> int:
    try:
        from prometheus_client import CollectorRegistry, start_http_server

        from pyasynq.metrics import QueueMetricsCollector
    except ImportError:
        raise UsageError(
            "pyasynq metrics needs prometheus-client: pip install 'pyasynq[prometheus]'"
        ) from None
    with out.connect(args) as insp:
        registry = CollectorRegistry()
        registry.register(QueueMetricsCollector(insp))
        try:
            server, thread = start_http_server(args.port, addr=args.host, registry=registry)
        except OSError as exc:
            raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        print(f"pyasynq: serving queue metrics at http://{args.host}:{server.server_port}"
              "/metrics (Ctrl-C to stop)", file=sys.stderr, flush=True)  # fmt: skip
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
    return 0
