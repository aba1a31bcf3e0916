# Two commands do everything on a fresh machine (Python 3.10-3.12 with venv):
#   make demo   set up, then sync every stream from the local vendor emulator into ./usage.duckdb
#   make test   set up, then run the whole test suite (unit, integration, Meltano, PyAirbyte, and the
#               Docker image tests where a Docker engine runs)
# The Docker image Airbyte runs:
#   make image                      build airbyte/source-usage:dev FROM Airbyte's pinned base image
#   make image BASE_IMAGE=<image>   ... FROM another base, e.g. the one `make local-base-image` builds
#   make local-base-image           build that base offline from Debian's packages (root, debootstrap)
#   make test-image                 run only the image tests
# Mutation testing (mutmut; see the README, "Tests"):
#   make mutate                     mutate source_usage/framework, run the unit tests on each mutant, print the score
#   make mutate SCOPE=vendors       the same for source_usage/vendors
#   make mutate ARGS="diffs"        the diff of every mutant not killed nor listed in mutation/survivors.md
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
IMAGE ?= airbyte/source-usage:dev
BASE_IMAGE ?=
LOCAL_BASE_IMAGE ?= source-usage/local-base:bookworm

.PHONY: demo test test-image bench image local-base-image clean

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

test-image: $(STAMP)
	$(BIN)/python -m pytest -m image $(ARGS)

SCOPE ?= framework

.PHONY: mutate
mutate: $(STAMP)
	$(BIN)/python -c "import mutmut" 2>/dev/null || $(BIN)/python -m pip install --quiet -e ".[test,demo,mutate]"
	$(BIN)/python mutation/mutate.py --scope $(SCOPE) $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py $(ARGS)

image:
	IMAGE="$(IMAGE)" BASE_IMAGE="$(BASE_IMAGE)" scripts/build-image.sh

local-base-image:
	scripts/local-base-image.sh $(LOCAL_BASE_IMAGE)

clean:
	rm -rf $(VENV) build *.egg-info usage.duckdb .pyairbyte .bench .meltano-venv .meltano-venv.lock .singer-tools mutants
