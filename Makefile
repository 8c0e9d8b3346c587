# Two commands matter to a new user: `make demo` and `make test`. Both install what they need first.
# Installs are idempotent: stamps are rebuilt only when the requirement files change.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
NATIVE_STAMP := $(VENV)/.native-decoder
STAGE ?= dev
PYTEST_ARGS ?=

.PHONY: help install demo up down status test test-unit test-infra test-integration test-e2e synth bench lock clean

help:
	@echo "make demo   - set up and run the local platform end to end"
	@echo "make test   - set up and run every test tier (benchmarks excluded)"
	@echo "make up / make down / make status - keep the local services running, stop them, show them"
	@echo "make synth  - synthesize the CDK app (STAGE=$(STAGE)) with cdk-nag; no AWS account or Docker needed"
	@echo "make bench  - run the benchmarks"
	@echo "make lock   - re-resolve requirements into constraints.txt"

$(PIP_STAMP): requirements.txt requirements-dev.txt constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@command -v java >/dev/null || echo "note: no Java found; PySpark needs a JRE 17+ (apt-get install openjdk-17-jre-headless)"
	touch $@

# The FeatureReader's native decoder (recsys/features/_decode.c): needs gcc and the Python headers.
$(NATIVE_STAMP): recsys/features/_decode.c recsys/features/build_native.py $(PIP_STAMP)
	$(PY) recsys/features/build_native.py
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(PIP_STAMP) $(NATIVE_STAMP) $(NODE_STAMP)

demo: install
	$(PY) -m recsys --stage $(STAGE) demo

up: install
	$(PY) -m recsys --stage $(STAGE) up

down:
	@test -x $(PY) && $(PY) -m recsys down || echo "nothing to stop"

status: $(PIP_STAMP)
	$(PY) -m recsys status

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit test-infra test-integration test-e2e: install
	$(PY) -m pytest tests/$(subst test-,,$@) $(PYTEST_ARGS)

synth: install
	npx cdk synth --quiet -c stage=$(STAGE)
	$(VENV)/bin/cfn-lint --non-zero-exit-code error cdk.out/*.template.json

bench: install
	$(PY) -m benchmarks.run_all

lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip freeze --exclude-editable | sort > constraints.txt

clean: down
	rm -rf $(VENV) node_modules cdk.out build .local .pytest_cache .hypothesis recsys/features/_decode*.so
