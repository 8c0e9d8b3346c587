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
# LocalStack (docs/deploy.md): its own Python 3.13 venv and its own cdklocal, apart from the platform's pins.
LOCALSTACK_DIR := .localstack
LOCALSTACK_VENV := $(LOCALSTACK_DIR)/venv
LOCALSTACK_STAMP := $(LOCALSTACK_VENV)/.installed
LOCALSTACK_TOOLS := tools/localstack
CDKLOCAL_STAMP := $(LOCALSTACK_TOOLS)/node_modules/.installed
# pyenv's 3.13, else any python3.13 on PATH.
LOCALSTACK_PYTHON ?= $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13) $(shell command -v python3.13))
# The LocalStack tier: the integration and e2e tiers again with AWS on LocalStack, plus its own tests.
LOCALSTACK_TESTS ?= tests/integration tests/e2e tests/localstack

.PHONY: help install demo up down status test test-moto test-localstack test-unit test-infra test-integration \
	test-e2e synth bench lock clean localstack-install localstack-up localstack-down localstack-lock deploy-smoke \
	images

help:
	@echo "make demo   - set up and run the local platform end to end"
	@echo "make test   - set up and run every test tier (benchmarks excluded): on moto, then on LocalStack"
	@echo "make localstack-up / localstack-down - run LocalStack on the host (docs/deploy.md)"
	@echo "make deploy-smoke - cdklocal deploy --all of the LocalStack profile, then check what it created"
	@echo "make images - build every container image without Docker (buildah) and run its contract"
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

# Both AWS targets; each pytest run prints its own pass / fail / skip counts.
test: test-moto test-localstack

test-moto: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-localstack: install $(LOCALSTACK_STAMP) $(CDKLOCAL_STAMP)
	RECSYS_TEST_AWS=localstack $(PY) -m pytest $(LOCALSTACK_TESTS) $(PYTEST_ARGS)

test-unit test-infra test-integration test-e2e: install
	$(PY) -m pytest tests/$(subst test-,,$@) $(PYTEST_ARGS)

synth: install
	npx cdk synth --quiet -c stage=$(STAGE)
	$(VENV)/bin/cfn-lint --non-zero-exit-code error cdk.out/*.template.json

$(LOCALSTACK_STAMP): $(LOCALSTACK_TOOLS)/requirements.txt $(LOCALSTACK_TOOLS)/constraints.txt
	@test -n "$(LOCALSTACK_PYTHON)" || { echo "LocalStack needs Python 3.13: pyenv install 3.13, or set LOCALSTACK_PYTHON"; exit 1; }
	test -x $(LOCALSTACK_VENV)/bin/python || $(LOCALSTACK_PYTHON) -m venv $(LOCALSTACK_VENV)
	$(LOCALSTACK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r $(LOCALSTACK_TOOLS)/requirements.txt -c $(LOCALSTACK_TOOLS)/constraints.txt
	touch $@

$(CDKLOCAL_STAMP): $(LOCALSTACK_TOOLS)/package.json $(LOCALSTACK_TOOLS)/package-lock.json
	cd $(LOCALSTACK_TOOLS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

localstack-install: $(LOCALSTACK_STAMP) $(CDKLOCAL_STAMP)

localstack-up: install $(LOCALSTACK_STAMP)
	$(PY) -m recsys localstack-up

localstack-down:
	@test -x $(PY) && $(PY) -m recsys localstack-down || echo "nothing to stop"

localstack-lock: $(LOCALSTACK_STAMP)
	$(LOCALSTACK_VENV)/bin/python -m pip install --quiet -r $(LOCALSTACK_TOOLS)/requirements.txt
	$(LOCALSTACK_VENV)/bin/python -m pip freeze | sort -f > $(LOCALSTACK_TOOLS)/constraints.txt

deploy-smoke: install localstack-install
	RECSYS_TEST_AWS=localstack $(PY) -m pytest tests/localstack/test_deploy_smoke.py $(PYTEST_ARGS)

# Every image of the app, built without Docker from debootstrap stand-ins of its bases, and its contract run
# (tools/images/build.py; docs/deploy.md). Needs root and Debian's buildah, podman, debootstrap and runc.
IMAGE_TOOLS := buildah podman debootstrap runc
images: install
	@for tool in $(IMAGE_TOOLS); do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then apt-get install -y --no-install-recommends $(IMAGE_TOOLS) uidmap; fi
	$(PY) -m tools.images.build

bench: install
	$(PY) -m benchmarks.run_all

lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip freeze --exclude-editable | sort > constraints.txt

clean: down
	rm -rf $(VENV) node_modules cdk.out build .local .pytest_cache .hypothesis recsys/features/_decode*.so \
		$(LOCALSTACK_DIR) $(LOCALSTACK_TOOLS)/node_modules
