# The one place for commands. `make install` builds .venv; every other target uses it.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: services browser install demo test test-interop test-cluster test-slow lint typecheck format sync proto check bench bench-quick bench-scale bench-limits bench-enqueue bench-cluster clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=25.1"
	$(BIN)/python -m pip install -q -e ".[hiredis,embedded,examples,cli,prometheus,web,uvloop,otel,sqlalchemy,django,fastapi,pydantic]" --group dev --group web-test --group integrations-test
	touch $(STAMP)

install: $(STAMP)

# What the tests and the demo need from the machine (scripts/services.sh): Debian's
# redis-server, redis-sentinel, redis-tools, postgresql and chromium when missing (as root),
# and a PostgreSQL on loopback for the example tests. A no-op where all is there.
services:
	@bash scripts/services.sh packages

browser: services

demo: $(STAMP) services
	$(BIN)/python -m pyasynq.demo

test: $(STAMP)
	@eval "$$(bash scripts/services.sh env)" && \
		$(BIN)/python scripts/unasync.py --check && \
		$(BIN)/python -m pytest -q

# The cross-language suite alone: pyasynq against real Go asynq v0.26.0 programs (tests/interop,
# docs/interop.md). `make test` runs it too; without Go it skips, under CI=true it fails.
test-interop: $(STAMP) services
	$(BIN)/python -m pytest -q tests/interop tests/test_bench_go.py

# The functional suites again on a real Redis Cluster of three masters (tests/conftest.py).
test-cluster: $(STAMP) services
	PYASYNQ_TEST_TOPOLOGY=cluster $(BIN)/python -m pytest -q tests/test_client.py tests/test_inspector.py tests/server tests/scheduler tests/test_conformance_enqueue.py tests/rdb/test_snooze_ops.py tests/test_typed.py tests/cli/test_limits.py

test-slow: $(STAMP)
	@eval "$$(bash scripts/services.sh env)" && $(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts examples benchmarks chaos
	$(BIN)/ruff format --check src tests scripts examples benchmarks chaos

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

# Fleet-wide limits (docs/limits.md): 4 worker processes of concurrency 50 under a cap of 5
# and a rate of 100/s; reports the most running at once and the throughput (~30 s).
bench-limits: $(STAMP)
	$(BIN)/python -m benchmarks.limits $(BENCH_ARGS)

# pyasynq alone: single and concurrent (coalesced vs one-by-one) enqueue rates, with Redis
# CPU per enqueue; --src DIR (repeatable) compares trees in one run (docs/benchmarks.md).
bench-enqueue: $(STAMP)
	$(BIN)/python -m benchmarks.enqueue_rates $(BENCH_ARGS)

# Scale-out on a real 3-master Redis Cluster on this machine (docs/benchmarks.md).
bench-cluster: $(STAMP)
	$(BIN)/python -m benchmarks.cluster_scale $(BENCH_ARGS)

# The documentation site (mkdocs.yml, docs/): HTML in build/site. --strict turns every
# warning (a broken link, a reference to a name that does not exist) into a failure.
.PHONY: docs
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -q --group docs
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

clean:
	rm -rf $(VENV) .venv-proto .pytest_cache .mypy_cache .ruff_cache benchmarks/.venv-peers

# The fault suite (chaos/, docs/reliability.md): real workers and redis-server processes,
# faults injected, every task counted from records kept outside Redis. chaos-short is the
# CI tier (a few minutes); chaos is the full tier. The table goes to build/chaos/.
# Debian's redis-server and redis-sentinel (`make services`) and libfaketime (for the
# clock-skew scenario) are installed when missing (as root); under CI=true a faketime that
# cannot be installed is an error instead of a skipped scenario.
.PHONY: chaos chaos-short faketime
faketime:
	@command -v faketime >/dev/null || { [ "$$(id -u)" = 0 ] && \
		(apt-get install -y -qq faketime >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null && apt-get install -y -qq faketime >/dev/null)); } || \
		{ echo "faketime could not be installed (needs root and apt): the clock-skew scenario will be skipped" >&2; \
		  [ "$${CI:-}" != true ]; }

# The partition-netns scenario (chaos/netns.py) needs iptables (as root, in its own network
# namespace); installed from Debian when missing (scripts/services.sh also installs it).
.PHONY: netns-tools
netns-tools:
	@command -v iptables >/dev/null || { [ "$$(id -u)" = 0 ] && \
		(apt-get install -y -qq iptables >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null && apt-get install -y -qq iptables >/dev/null)); } || \
		{ echo "iptables could not be installed (needs root and apt): the partition-netns scenario will be skipped" >&2; \
		  [ "$${CI:-}" != true ]; }

chaos: $(STAMP) services faketime netns-tools
	$(BIN)/python -m chaos --tier full $(CHAOS_ARGS)

chaos-short: $(STAMP) services faketime netns-tools
	$(BIN)/python -m chaos --tier short $(CHAOS_ARGS)

# Fuzzing (tests/fuzz): the message decoder and the worker's dequeue path under atheris for
# FUZZ_SECONDS (default 60); the corpus grows in build/fuzz/codec. Installs the fuzz group.
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz: $(STAMP)
	$(BIN)/python -m pip install -q --group fuzz
	$(BIN)/python tests/fuzz/fuzz_codec.py -max_total_time=$(FUZZ_SECONDS)
