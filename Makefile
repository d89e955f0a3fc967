# One-command setup: `make demo` and `make test` create .venv, install torch (pinned CPU wheel) first,
# then the package; both are idempotent and take seconds when nothing changed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo test acceptance ops clean

setup: $(STAMP) ops

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

ops: $(STAMP)
	@if [ -f onnx_approx/ops/csrc/Makefile ]; then $(MAKE) -s -C onnx_approx/ops/csrc PYTHON=$(abspath $(BIN)/python); fi

demo: setup
	$(BIN)/onnx-approx run models/minilm-sst2-faster.toml

test: setup
	$(BIN)/python -m pytest -q

acceptance: setup
	$(BIN)/python -m pytest -q -m "slow or smoke"

clean:
	rm -rf build .pytest_cache
