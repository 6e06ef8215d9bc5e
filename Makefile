# onnxgate — two set-up commands: `make demo` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PROTO_OUT := src/gateway/_proto

.PHONY: venv demo run test check lint typecheck contracts protos protos-check bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "== Installing onnxgate and its dev dependencies into $(VENV) (first run only; a minute or two, pip's progress below)"
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	@touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m gateway.demo

run: demo

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Who may import whom: the import-linter contracts in pyproject.toml ([tool.importlinter]).
contracts: $(STAMP)
	$(VENV)/bin/lint-imports

check: lint typecheck contracts protos-check test

# Stubs are generated, never edited. The sed turns protoc's top-level imports into
# package-relative ones so the stubs import as gateway._proto.*, and puts our descriptors in
# a private pool (see src/gateway/_proto/_pool.py).
protos: $(STAMP)
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m grpc_tools.protoc -Iprotos --python_out=$(PROTO_OUT) --grpc_python_out=$(PROTO_OUT) \
		--mypy_out=$(PROTO_OUT) --mypy_grpc_out=$(PROTO_OUT) protos/*.proto
	sed -i -E 's/^import (\w+_pb2)( as \w+)?$$/from . import \1\2/' $(PROTO_OUT)/*_pb2_grpc.py $(PROTO_OUT)/*.pyi
	sed -i -E 's/^from google.protobuf import descriptor_pool as _descriptor_pool$$/from gateway._proto import _pool/; s/_descriptor_pool.Default\(\)/_pool.POOL/' $(PROTO_OUT)/*_pb2.py

protos-check: protos
	git diff --exit-code -- $(PROTO_OUT)

bench: $(STAMP)
	$(PY) benchmarks/compare.py

clean:
	rm -rf $(VENV) onnxgate-data build dist src/*.egg-info
