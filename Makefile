# The one place for commands. `make install` builds .venv; every other target uses it.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow lint typecheck format sync proto check bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=25.1"
	$(BIN)/python -m pip install -q -e ".[hiredis,embedded,examples,cli,prometheus]" --group dev
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m pyasynq.demo

test: $(STAMP)
	$(BIN)/python scripts/unasync.py --check
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

format: $(STAMP)
	$(BIN)/ruff format src tests scripts
	$(BIN)/ruff check --fix src tests scripts

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

clean:
	rm -rf $(VENV) .venv-proto .pytest_cache .mypy_cache .ruff_cache
