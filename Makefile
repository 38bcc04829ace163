# The one place for commands. `make install` builds .venv; every other target uses it.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: browser install demo test test-interop test-cluster test-slow lint typecheck format sync proto check bench bench-quick bench-scale clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=25.1"
	$(BIN)/python -m pip install -q -e ".[hiredis,embedded,examples,cli,prometheus,web,uvloop]" --group dev --group web-test
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m pyasynq.demo

# The web dashboard's browser tests drive Debian's Chromium; install it when we can (root).
browser:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test: $(STAMP) browser
	$(BIN)/python scripts/unasync.py --check
	$(BIN)/python -m pytest -q

# The cross-language suite alone: pyasynq against real Go asynq v0.26.0 programs (tests/interop,
# docs/interop.md). `make test` runs it too; without Go it skips, under CI=true it fails.
test-interop: $(STAMP)
	$(BIN)/python -m pytest -q -m interop tests/interop tests/test_bench_go.py

# The functional suites again on a real Redis Cluster of three masters (tests/conftest.py).
test-cluster: $(STAMP)
	PYASYNQ_TEST_TOPOLOGY=cluster $(BIN)/python -m pytest -q tests/test_client.py tests/test_inspector.py tests/server tests/scheduler tests/test_conformance_enqueue.py

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts examples benchmarks
	$(BIN)/ruff format --check src tests scripts examples benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests scripts examples
	$(BIN)/ruff check --fix src tests scripts examples

typecheck: $(STAMP)
	$(BIN)/mypy

sync: $(STAMP)
	$(BIN)/python scripts/unasync.py
	$(BIN)/ruff format -q src/pyasynq/_sync

# Regenerates the protobuf module in a separate venv: grpcio-tools 1.71 emits code for
# protobuf 5.29, which every protobuf runtime from 5.29 up (including 6 and 7) accepts.
proto:
	$(PY) -m venv .venv-proto
	.venv-proto/bin/python -m pip install -q "grpcio-tools==1.71.0" "mypy-protobuf==3.6.0"
	cd src/pyasynq/_rdb/proto && PATH=$(abspath .venv-proto/bin):$$PATH \
		$(abspath .venv-proto/bin/python) -m grpc_tools.protoc -I. --python_out=. --mypy_out=. asynq.proto

check: lint typecheck test

# Benchmarks (benchmarks/, docs/benchmarks.md): pyasynq against its peers on one private
# Redis. The harness builds the peers' venvs under benchmarks/.venv-peers on first use.
# Extra flags via BENCH_ARGS, e.g. BENCH_ARGS="--go-bin benchmarks/go/bin".
bench:
	$(PY) -m benchmarks.run $(BENCH_ARGS)

bench-quick:
	$(PY) -m benchmarks.run --quick $(BENCH_ARGS)

# pyasynq alone at scale: 1M-task backlog, 1,000 tasks in flight, --processes (docs/benchmarks.md,
# "Scale"); about 1.5 minutes here, BENCH_ARGS=--quick about 40 s.
bench-scale:
	$(PY) -m benchmarks.scale $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-proto .pytest_cache .mypy_cache .ruff_cache benchmarks/.venv-peers
