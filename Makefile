# Two commands on a fresh machine: `make serve` and `make test`. Both create .venv when missing and
# install what they need into it; nothing is installed system-wide except Debian packages that
# individual tests ask for (see tests/debian.py).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
GPU ?= 0
ARGS ?=
PYTEST_ARGS ?=

ifeq ($(GPU),1)
SERVE_EXTRA := serve-gpu
SERVE_OTHER_ORT := onnxruntime
# onnxruntime-gpu's own extras name the CUDA and cuDNN wheels it was built against; vr-serve loads
# them with onnxruntime.preload_dlls(). `vr-serve --self-test` says whether the GPU really runs.
SERVE_GPU_LIBS := 'onnxruntime-gpu[cuda,cudnn]'
else
SERVE_EXTRA := serve
SERVE_OTHER_ORT := onnxruntime-gpu
endif

.PHONY: serve test lint format clean vectors

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The stamp files re-run pip only when pyproject.toml changes.
$(VENV)/.installed-$(SERVE_EXTRA): pyproject.toml | $(BIN)/python
	@# onnxruntime and onnxruntime-gpu overwrite each other: remove the other flavour first.
	$(BIN)/python -m pip uninstall -y -q $(SERVE_OTHER_ORT) 2>/dev/null || true
	$(BIN)/python -m pip install -q -e '.[$(SERVE_EXTRA)]' $(SERVE_GPU_LIBS)
	rm -f $(VENV)/.installed-serve $(VENV)/.installed-serve-gpu
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip uninstall -y -q onnxruntime-gpu 2>/dev/null || true
	$(BIN)/python -m pip install -q -e '.[serve,sim,train,bench,triton,dev]'
	touch $@

serve: $(VENV)/.installed-$(SERVE_EXTRA)
	$(BIN)/vr-serve $(ARGS)

test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Regenerate the golden protocol vectors (only when the protocol really changes).
vectors: $(VENV)/.installed-test
	$(BIN)/python tests/vectors/generate.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
