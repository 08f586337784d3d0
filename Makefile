# Two commands set up a fresh machine: `make demo` (the main job) and `make test` (the suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN    ?= runs/demo
ART    ?= artifacts/demo

# Offline data cache: full MNIST's original files, assembled into the gitignored data/ folder
# (where --dataset mnist looks by default) when this folder exists; online, torchvision downloads.
MNIST_CACHE ?= ../shared/data/mnist
DATA        ?= data

.PHONY: demo test test-oldest build system data pretrained sanitize accuracy data-bench bench reader-model reader-eval reader-fps clean

# Debian packages the demo and the tests use (fonts, Fashion-MNIST, Xvfb): installed when this
# machine can (root with apt-get), else the exact command is printed (tools/system_packages.sh).
system:
	@tools/system_packages.sh

data: $(DATA)/MNIST/raw/t10k-labels-idx1-ubyte

$(DATA)/MNIST/raw/t10k-labels-idx1-ubyte:
	@if [ -x $(MNIST_CACHE)/assemble.sh ]; then \
		$(MNIST_CACHE)/assemble.sh $(DATA) >/dev/null && echo "MNIST: $(DATA)/MNIST/raw (from $(MNIST_CACHE))"; \
	else \
		echo "MNIST: no offline copy in $(MNIST_CACHE); lenet-train --dataset mnist downloads it into $(DATA) when online"; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Dependencies (torch is several GB the first time, cached by pip afterwards).
$(VENV)/.deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q scikit-build-core pybind11 numpy
	@# opencv-python (GUI, for lenet-digits' window) replaces opencv-python-headless: both install
	@# the same cv2 files, so the old one goes first and cv2 is reinstalled if that broke it.
	$(BIN)/pip uninstall -y -q opencv-python-headless 2>/dev/null || true
	$(BIN)/pip install -q -e '.[all,dev]'
	$(BIN)/python -c "import cv2" 2>/dev/null || $(BIN)/pip install -q --force-reinstall --no-deps opencv-python
	touch $@

# Rebuild the C++ extension (incremental: scikit-build-core keeps build/).
build: $(VENV)/.deps
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/python -c "import lenet, lenet_ext; print('lenet', lenet.__version__, lenet_ext.build_info())"

demo: build system data
	$(BIN)/lenet-summary lenet5
	@# --force: a second `make demo` replaces the demo run it made the first time (lenet-train
	@# refuses to overwrite a run without it); say so before the old run goes.
	@if [ -e $(RUN)/last.pt ]; then echo "make demo: replacing the earlier demo run in $(RUN)"; fi
	@# Full MNIST (60,000 training digits), a short run: the test accuracy is on the 10,000 test digits.
	$(BIN)/lenet-train --arch lenet5 --dataset mnist --data-dir $(DATA) --epochs 3 --device cpu --force --out $(RUN)
	$(BIN)/lenet-export $(RUN)/best.pt --out $(ART)
	$(BIN)/python -m lenet_ext $(ART) --dataset mnist --data-dir $(DATA)
	@# The pretrained weights shipped in the package (make pretrained), through the same engine.
	$(BIN)/python -m lenet_ext lenet5-mnist --dataset mnist --data-dir $(DATA)
	$(BIN)/lenet-bench $(ART) --seconds 0.5
	$(BIN)/python -m lenet.digits.kit.synth --out $(RUN)/page.png --seed 1
	@# The page is read with the reader model bundled in the package (make reader-model).
	$(BIN)/lenet-digits $(RUN)/page.png --headless --out $(RUN)/page.annotated.png --json $(RUN)/page.json

test: build system data
	$(BIN)/python -m pytest -q

# The suite against the oldest versions pyproject.toml allows (its lower bounds, pinned in
# tools/constraints-oldest.txt), in a venv and build directory of its own (.venv and build/ are
# left alone). The build requirements are installed first and used as they are (no isolation),
# so the extension is built with the oldest scikit-build-core and pybind11 too.
OLD_VENV := .venv-oldest
OLD_BIN  := $(OLD_VENV)/bin
OLD_PIP  := $(OLD_BIN)/pip install -q -c tools/constraints-oldest.txt
OLD_EXT  := --no-build-isolation -Cbuild-dir=build/oldest/{wheel_tag}

$(OLD_BIN)/python:
	$(PYTHON) -m venv $(OLD_VENV)
	$(OLD_BIN)/pip install -q --upgrade pip

$(OLD_VENV)/.deps: pyproject.toml tools/constraints-oldest.txt | $(OLD_BIN)/python
	$(OLD_PIP) scikit-build-core pybind11 numpy
	$(OLD_BIN)/pip uninstall -y -q opencv-python-headless 2>/dev/null || true
	$(OLD_PIP) $(OLD_EXT) -e '.[all,dev]'
	$(OLD_BIN)/python -c "import cv2" 2>/dev/null || $(OLD_PIP) --force-reinstall --no-deps opencv-python
	touch $@

test-oldest: $(OLD_VENV)/.deps system data
	$(OLD_PIP) $(OLD_EXT) --no-deps -e .
	$(OLD_BIN)/python -c "import lenet, lenet_ext; print('lenet', lenet.__version__, lenet_ext.build_info())"
	$(OLD_BIN)/python -m pytest -q

# Benchmarks, not tests: train every arch with its recipe (tens of minutes on 2 cores), and
# compare our batch feeding with a plain torchvision DataLoader loop.
accuracy: build
	$(BIN)/python tools/accuracy.py --out results/accuracy

data-bench: build
	$(BIN)/python tools/data_throughput.py

# The pretrained weights shipped in the package (python/lenet/pretrained/lenet5-mnist): lenet5 on
# full MNIST, 3 seeds (one thread each, 40 epochs: ~10-25 min per seed on 2 cores), seed 0's last epoch shipped.
pretrained: build data
	$(BIN)/python tools/pretrained.py --data-dir $(DATA)

# The digit reader's model: render its training data (cached in build/reader-data), train, export
# and ship it to python/lenet/digits/model (tools/reader_model.py; ~30 min on 2 cores: data 10, training 19). Then
# score it on held-out pages, and measure frames/s on 640x480 video.
reader-model: build
	$(BIN)/python tools/reader_model.py
	$(BIN)/python tools/reader_eval.py --record

reader-eval: build
	$(BIN)/python tools/reader_eval.py

reader-fps: build
	$(BIN)/python tools/reader_fps.py

# lenet_ext vs PyTorch eager / TorchScript / ONNX Runtime / OpenCV DNN on the demo artifact.
bench: build
	$(BIN)/lenet-bench $(ART) --json $(ART)/bench.json

# The extension built with AddressSanitizer + UndefinedBehaviorSanitizer into its own directory
# (build/sanitize/site; the editable install everyone else uses is left alone), and the engine
# tests run against it. Python itself is not instrumented, so the ASan runtime is preloaded and
# leak checking (CPython's arenas) is off. sitecustomize.py there drops the editable redirect so
# the sanitized copy is the one imported.
SAN_SITE = build/sanitize/site
SAN_ENV = PYTHONPATH=$(SAN_SITE) \
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
sanitize: $(VENV)/.deps
	rm -rf $(SAN_SITE)
	LENET_SANITIZE=ON LENET_CUDA=OFF $(BIN)/pip install -q --no-deps --target $(SAN_SITE) \
		-Cbuild-dir=build/sanitize/{wheel_tag} .
	printf 'import sys\nsys.meta_path[:] = [f for f in sys.meta_path if "ScikitBuild" not in type(f).__name__]\n' \
		> $(SAN_SITE)/sitecustomize.py
	$(SAN_ENV) $(BIN)/python -c "import lenet_ext; print('sanitized build:', lenet_ext.__file__, lenet_ext.build_info()['cuda'])"
	$(SAN_ENV) $(BIN)/python -m pytest -q -p no:cacheprovider tests/engine

clean:
	rm -rf build $(VENV) $(OLD_VENV) runs artifacts
