# Entry points for people and CI: `make example`, `make test` (the fast loop) and `make test-all`
# (everything, slow tests included: what CI runs).
# Each creates .venv with a supported Python (3.11 or 3.12) and installs the project into it.
PYTHON ?= $(shell for p in python3.12 python3.11 python3; do \
  command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not ((3,11) <= sys.version_info[:2] <= (3,12)))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
# Python's bytecode cache (__pycache__/, ignored by git) is written also where the environment sets
# PYTHONDONTWRITEBYTECODE: without it each pytest worker and each `crs-rules` process the tests start
# compiles the package and the test modules anew.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: example test test-all wheel-check bench clean

$(BIN)/crs-rules: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or 3.12 is required (durable_rules does not import on 3.13)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

example: $(BIN)/crs-rules
	$(BIN)/crs-rules validate rules
	$(BIN)/crs-rules evaluate examples/grade3-adult.yaml

# The wheel check runs alongside ruff, mypy and pytest (it mostly waits for pip and the disk); its
# lines are printed after theirs. The target fails if any of them fails. pytest's two workers each
# take one half of the tests in order (a module's fixtures are then mostly made once, not on both)
# and take over part of the other's remaining tests when they run out (`--dist worksteal`).
define checks
	log=$$(mktemp); bash tests/wheel_smoke.sh $(BIN)/python >$$log 2>&1 & wheel=$$!; \
	$(BIN)/ruff check && $(BIN)/python -m mypy && $(BIN)/python -m pytest -n 2 --dist worksteal $(1); status=$$?; \
	wait $$wheel || status=1; cat $$log; rm -f $$log; exit $$status
endef

test: $(BIN)/crs-rules
	$(call checks,-m 'not slow')

test-all: $(BIN)/crs-rules
	$(call checks,)

# The package as users install it: sdist -> wheel -> fresh venv outside the clone, used from elsewhere.
wheel-check: $(BIN)/crs-rules
	bash tests/wheel_smoke.sh $(BIN)/python

# zen-engine (the [bench] extra) is for the side-by-side comparison only; bench/run.py runs without it.
bench: $(BIN)/crs-rules
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis .mypy_cache .ruff_cache .coverage
