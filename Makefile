# Set-up is self-contained: each target creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist

.PHONY: demo test test-fast data examples bench clean

# The demo exports to ONNX and runs it in ONNX Runtime: it needs the `export` extra.
$(VENV)/.demo-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[export]" 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import zoo, tf2onnx, onnxruntime" && touch $@

$(VENV)/.test-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import zoo, pytest, tensorflow_datasets, scipy" && touch $@ $(VENV)/.demo-installed

# Fashion-MNIST comes from the Debian package (no network needed beyond the Debian mirror).
data:
	@if [ -d $(FASHION_MNIST_DIR) ]; then echo "Fashion-MNIST: $(FASHION_MNIST_DIR)"; \
	elif [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null; \
	else echo "Fashion-MNIST missing: run 'sudo apt-get install dataset-fashion-mnist'"; fi

demo: $(VENV)/.demo-installed data
	$(VENV)/bin/stable-zoo demo

test: $(VENV)/.test-installed data
	$(PY) -m pytest

test-fast: $(VENV)/.test-installed
	$(PY) -m pytest -m "not slow"

examples: $(VENV)/.demo-installed
	$(VENV)/bin/stable-zoo examples

# Speed and memory benchmarks (scripts, not tests), then docs/performance.md from their results.
bench: $(VENV)/.test-installed
	$(PY) benchmarks/vs_pytorch.py
	$(PY) benchmarks/speedup_spread.py
	$(PY) benchmarks/pointwise_xla.py
	$(PY) benchmarks/input_pipeline.py
	$(PY) benchmarks/depth_scaling.py
	$(PY) benchmarks/reversible_memory.py
	$(PY) benchmarks/reversible_drift.py
	$(PY) benchmarks/report.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
