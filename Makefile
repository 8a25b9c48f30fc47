# The README's two commands: `make demo` and `make test`. Each creates .venv if missing and installs from the
# tested versions in requirements.lock. torch is installed first, pinned to the CPU build (see DEVELOPERS.md).
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
DEMO_DIR ?= runs/demo

.PHONY: install demo test lint bench lock clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (lobnet needs Python >= 3.11; set PYTHON=...)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/lobnet-demo output_dir=$(DEMO_DIR)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check lobnet tests scripts experiments
	$(VENV)/bin/ruff format --check lobnet tests scripts experiments

bench: $(STAMP)
	$(PY) scripts/bench_data.py

# Re-pin requirements.lock from the current venv (after deliberately upgrading something).
lock: $(STAMP)
	{ echo "# Tested versions (pip freeze on Python 3.11). torch is pinned separately in the Makefile ($(TORCH), CPU build)"; \
	  echo "# because it must be installed before anything that depends on it. Regenerate with \`make lock\`."; \
	  $(PY) -m pip freeze --exclude-editable | grep -v -E '^(torch==|lobnet)'; } > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .lobnet_cache outputs multirun runs
