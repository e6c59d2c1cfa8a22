# Set-up and everyday commands. `make help` lists them.
# Two stacks, each locked by pip-compile (make lock): Python 3.9 to 3.11 with TensorFlow 2.15.1
# (requirements.txt at the root, requirements/requirements-{gpu,dev,onnx}.txt), and Python 3.12 and 3.13
# with TensorFlow 2.21 and tf-keras (requirements/requirements-py312*.txt). make install builds .venv with
# the newest of python3.13 ... python3.9 it finds (pyenv versions too), or PYTHON=python3.11 or a path; a
# PYTHON of another version than .venv's rebuilds .venv.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
SUPPORTED := import sys; sys.exit(not (3, 9) <= sys.version_info[:2] <= (3, 13))
# The first of $(1) that runs and is supported, as a full path; a pyenv shim that needs PYENV_VERSION is
# replaced by its interpreter under `pyenv prefix`.
find_python = $(shell for p in $(1); do for c in $$p "$$(pyenv prefix $${p:6} 2>/dev/null)/bin/$$p"; do \
	$$c -c '$(SUPPORTED)' 2>/dev/null && { $$c -c 'import sys; print(sys.executable)'; exit; }; done; done)
NEW_PYTHON := $(call find_python,$(or $(PYTHON),python3.13 python3.12 python3.11 python3.10 python3.9 python3))
# The interpreter whose stack is installed: .venv's, unless PYTHON asks for another
VENV_PYTHON := $(if $(and $(wildcard $(PY)),$(if $(PYTHON),,1)),$(PY),$(NEW_PYTHON))
VERSION := $(shell $(VENV_PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
STACK := $(if $(filter 3.12 3.13,$(VERSION)),-py312)
# requirements.txt is the one lock at the root; the others are under requirements/
LOCK := $(if $(STACK)$(GPU),requirements/requirements$(STACK)$(if $(GPU),-gpu).txt,requirements.txt)
DEV_LOCK := requirements/requirements$(STACK)-dev.txt
# tf2onnx needs Python 3.10: on the 2.15 stack it has a lock of its own (requirements/requirements-onnx.in says why)
ONNX_LOCK := $(if $(filter 3.10 3.11,$(VERSION)),requirements/requirements-onnx.txt)
STAMP := $(VENV)/.synced-$(VERSION)-$(if $(GPU),gpu,cpu)
DEMO_DATA := data/demo
DEMO_WORK := work/demo
WORK ?= $(DEMO_WORK)

.PHONY: help install test lint demo tensorboard lock pip-tools conda-update clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

install: $(STAMP) ## make .venv with Python 3.9-3.13 and sync it to its stack's lock (GPU=1: the CUDA build)

$(STAMP): $(LOCK) $(DEV_LOCK) $(ONNX_LOCK)
	@test -n "$(VENV_PYTHON)" || { echo "error: no Python 3.9 to 3.13 found$(if $(PYTHON), as PYTHON=$(PYTHON));" \
		"install one (e.g. pyenv install 3.12) or use conda: make conda-update"; exit 2; }
	@if [ -x $(PY) ] && [ "$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != "$(VERSION)" ]; then \
		echo "$(VENV) has another Python than $(VERSION): rebuilding it with $(VENV_PYTHON)"; rm -rf $(VENV); fi
	@test -x $(PY) || $(VENV_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip pip-tools
	$(VENV)/bin/pip-sync --quiet $(LOCK) $(DEV_LOCK) $(ONNX_LOCK)
	@rm -f $(VENV)/.synced* && touch $@
	@$(PY) -c 'import platform, importlib.metadata as m; print("$(VENV): Python", platform.python_version(), "with tensorflow", m.version("tensorflow"))'

test: install ## lint, then run the test suite (TESTS=tests/x.py: those tests only)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(TESTS)

lint: install ## ruff check
	$(VENV)/bin/ruff check .

demo: install ## generate demo data, prepare it and train a small model on the CPU (a few minutes)
	$(PY) data_preparation.py --data_root $(DEMO_DATA) --synthetic 200
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) train.py --data_root $(DEMO_DATA) --work_dir $(DEMO_WORK) --device cpu \
		--backbone efficientnetb0 --image_size 128 --batch_size 16 --epochs 6 --steps_per_epoch 25 --encoder_weights none \
		--mixed_precision False --log tensorboard --overwrite

tensorboard: install ## open the TensorBoard logs of a run: make tensorboard WORK=work/demo
	$(PY) -m tensorboard.main --logdir $(WORK)/tensorflow/logs/tensorboard

# pip-compile runs in each lock's folder, so that the -r/-c paths in its comments are relative to the lock, as
# in the .in files (-c ../requirements.txt); the constraining locks come first.
lock: ## re-resolve every lock file, each on its stack's oldest Python (3.9, 3.12; ONNX's on 3.10) so that it installs on the rest
	@for lock in requirements requirements/requirements-dev requirements/requirements-gpu \
		requirements/requirements-onnx:python3.10 requirements/requirements-py312:python3.12 \
		requirements/requirements-py312-dev:python3.12 requirements/requirements-py312-gpu:python3.12; do file=$${lock%%:*}; \
		name=$$(echo "$$lock:python3.9" | cut -d: -f2); \
		python=$$(for c in $$name "$$(pyenv prefix $${name:6} 2>/dev/null)/bin/$$name"; do \
			$$c -c 'import sys; print(sys.executable)' 2>/dev/null && break; done); \
		test -n "$$python" || { echo "error: make lock needs $$name"; exit 2; }; \
		test -x .venv-lock-$$name/bin/pip-compile || { $$python -m venv .venv-lock-$$name && \
			.venv-lock-$$name/bin/pip install --quiet pip-tools; } || exit 1; \
		(cd $$(dirname $$file) && CUSTOM_COMPILE_COMMAND="make lock" "$(CURDIR)/.venv-lock-$$name/bin/pip-compile" \
			--quiet --strip-extras --no-emit-index-url --no-emit-find-links \
			--output-file $$(basename $$file).txt $$(basename $$file).in) || exit 1; done

pip-tools: ## sync the active environment (e.g. conda's) to its stack's locks instead of .venv (GPU=1 as above)
	pip install --quiet pip-tools
	stack=$$(python -c 'import sys; print("-py312" if sys.version_info >= (3, 12) else "")'); \
		onnx=$$(python -c 'import sys; print("requirements/requirements-onnx.txt" if sys.version_info[:2] in [(3, 10), (3, 11)] else "")'); \
		lock=requirements$$stack$(if $(GPU),-gpu).txt; [ $$lock = requirements.txt ] || lock=requirements/$$lock; \
		pip-sync $$lock requirements/requirements$$stack-dev.txt $$onnx

conda-update: ## create or update the conda env segmentation-tf; then: conda activate segmentation-tf && make pip-tools
	conda env update --prune -f environment.yml
	@echo "now run: conda activate segmentation-tf && make pip-tools"

clean: ## remove .venv and the demo's data and run (never your own data or runs)
	rm -rf $(VENV) .venv-lock-* $(DEMO_DATA) $(DEMO_WORK)
