# Two commands do everything on a fresh machine (Python 3.10-3.12 with venv):
#   make demo   set up, then sync every stream from the local vendor emulator into ./usage.duckdb
#   make test   set up, then run the whole test suite (unit, integration, Meltano, PyAirbyte)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,demo]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/source-usage-demo $(ARGS)

# Two workers, one test module each at a time (--dist loadfile keeps a module's fixtures on one worker).
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info usage.duckdb .pyairbyte .bench
