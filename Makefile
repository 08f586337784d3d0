# Two commands set up a fresh machine: `make demo` (the main job) and `make test` (the suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN    ?= runs/demo
ART    ?= artifacts/demo

.PHONY: demo test build sanitize accuracy data-bench bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Dependencies (torch is several GB the first time, cached by pip afterwards).
$(VENV)/.deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q scikit-build-core pybind11 numpy
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Rebuild the C++ extension (incremental: scikit-build-core keeps build/).
build: $(VENV)/.deps
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/python -c "import lenet, lenet_ext; print('lenet', lenet.__version__, lenet_ext.build_info())"

demo: build
	$(BIN)/lenet-summary lenet5
	$(BIN)/lenet-train --arch lenet5 --dataset mnist-sample --epochs 20 --augment --device cpu --out $(RUN)

test: build
	$(BIN)/python -m pytest -q

# Benchmarks, not tests: train every arch with its recipe (tens of minutes on 2 cores), and
# compare our batch feeding with a plain torchvision DataLoader loop.
accuracy: build
	$(BIN)/python tools/accuracy.py --out results/accuracy

data-bench: build
	$(BIN)/python tools/data_throughput.py

clean:
	rm -rf build $(VENV) runs artifacts
