# Set-up and everyday commands. `make help` lists them.
# TensorFlow 2.15 supports Python 3.9 to 3.11; the first of python3.11, python3.10, python3.9,
# python3 that is one of those builds .venv (or name one: make install PYTHON=/path/to/python).

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
LOCK := $(if $(GPU),requirements-gpu.txt,requirements.txt)
STAMP := $(VENV)/.synced-$(if $(GPU),gpu,cpu)
SUPPORTED := import sys; sys.exit(not (3, 9) <= sys.version_info[:2] <= (3, 11))
PYTHON ?= $(shell for p in python3.11 python3.10 python3.9 python3; do \
	$$p -c '$(SUPPORTED)' 2>/dev/null && { $$p -c 'import sys; print(sys.executable)'; break; }; done)
LOCK_PYTHON ?= python3.9
DEMO_DATA := data/demo
DEMO_WORK := work/demo
WORK ?= $(DEMO_WORK)

.PHONY: help install test lint demo tensorboard lock pip-tools conda-update clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

install: $(STAMP) ## make .venv with Python 3.9-3.11 and sync it to the lock (GPU=1: the CUDA build)

$(STAMP): $(LOCK) requirements-dev.txt
	@test -x $(PY) || test -n "$(PYTHON)" || { echo "error: no Python 3.9, 3.10 or 3.11 found;" \
		"install one (e.g. pyenv install 3.11) or use conda: make conda-update"; exit 2; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c '$(SUPPORTED)' || { echo "error: $(VENV) has Python" \
		"$$($(PY) -c 'import platform; print(platform.python_version())'), TensorFlow 2.15 needs 3.9 to 3.11;" \
		"remove $(VENV) and run make install again"; exit 2; }
	$(PY) -m pip install --quiet --upgrade pip pip-tools
	$(VENV)/bin/pip-sync --quiet $(LOCK) requirements-dev.txt
	@rm -f $(VENV)/.synced-* && touch $@

test: install ## lint, then run the test suite
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: install ## ruff check
	$(VENV)/bin/ruff check .

demo: install ## generate demo data, prepare it and train a small model on the CPU (a few minutes)
	$(PY) data_preparation.py --data_root $(DEMO_DATA) --synthetic 200
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) train.py --data_root $(DEMO_DATA) --work_dir $(DEMO_WORK) --device cpu \
		--backbone efficientnetb0 --image_size 128 --batch_size 16 --epochs 6 --steps_per_epoch 25 --encoder_weights none \
		--mixed_precision False --log tensorboard --overwrite

tensorboard: install ## open the TensorBoard logs of a run: make tensorboard WORK=work/demo
	$(PY) -m tensorboard.main --logdir $(WORK)/tensorflow/logs/tensorboard

lock: ## re-resolve the lock files on Python 3.9, the oldest supported, so they install on 3.9-3.11
	@$(LOCK_PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 9))' 2>/dev/null || { \
		echo "error: make lock needs Python 3.9: give it as LOCK_PYTHON=/path/to/python3.9"; exit 2; }
	@test -x .venv-lock/bin/pip-compile || { $(LOCK_PYTHON) -m venv .venv-lock && \
		.venv-lock/bin/pip install --quiet pip-tools; }
	for f in requirements requirements-dev requirements-gpu; do \
		CUSTOM_COMPILE_COMMAND="make lock" .venv-lock/bin/pip-compile --quiet --strip-extras \
		--no-emit-index-url --no-emit-find-links --output-file $$f.txt $$f.in || exit 1; done

pip-tools: ## sync the active environment (e.g. conda's) to the locks instead of .venv (GPU=1 as above)
	pip install --quiet pip-tools
	pip-sync $(LOCK) requirements-dev.txt

conda-update: ## create or update the conda env segmentation-tf; then: conda activate segmentation-tf && make pip-tools
	conda env update --prune -f environment.yml
	@echo "now run: conda activate segmentation-tf && make pip-tools"

clean: ## remove .venv and the demo's data and run (never your own data or runs)
	rm -rf $(VENV) .venv-lock $(DEMO_DATA) $(DEMO_WORK)
