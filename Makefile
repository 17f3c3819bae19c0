# One-command entry points. Everything installs from this repository's own files:
# Python deps into .venv (pip), restate-server from npm (pinned in restate_sync/restate_server/install.py).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# extra pytest arguments, e.g. `make test PYTEST_ARGS="-k counter"`
PYTEST_ARGS ?=
# the other CPython versions setup.cfg claims; each runs the unit and end-to-end tests
EXTRA_PYTHONS ?= 3.12 3.13

.PHONY: setup server demo test test-unit test-pythons conformance lint clean

setup: $(VENV)/.installed server

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Installs the pinned restate-server with npm into the user cache (once) and prints its path.
server: $(VENV)/.installed
	$(PY) -m restate_sync.restate_server install

# The main job: serve the examples to a local restate-server and invoke Greeter/greet.
demo: setup
	$(VENV)/bin/restate-sync dev examples/greeter.py:endpoint examples/counter.py:endpoint \
		--invoke Greeter/greet --data '"World"'

# The whole suite: unit tests and end-to-end tests against a real restate-server, the
# end-to-end tests again with every blocking await suspending and replaying (--always-suspend),
# then Restate's SDK conformance scenarios in every configuration (threeNodes* on a local cluster), then
# the unit and end-to-end tests under every other supported Python.
test: setup lint
	$(PY) -m pytest $(PYTEST_ARGS)
	$(PY) -m pytest tests/e2e --always-suspend $(PYTEST_ARGS)
	$(PY) -m pytest tests/conformance --conformance-suite=all $(PYTEST_ARGS)
	$(MAKE) test-pythons

test-pythons: server
	@for version in $(EXTRA_PYTHONS); do scripts/test-python.sh $$version $(PYTEST_ARGS) || exit 1; done

# Only the conformance scenarios; CONFORMANCE_SUITE=default|alwaysSuspending|lazyState|... or all
CONFORMANCE_SUITE ?= all
conformance: setup
	$(PY) -m pytest tests/conformance --conformance-suite=$(CONFORMANCE_SUITE) $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# mypy --strict and pyright (both configured in pyproject.toml) on restate_sync, tests/typing, examples
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check restate_sync tests examples scripts test-services benchmarks
	$(VENV)/bin/ruff format --check restate_sync tests examples scripts test-services benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/pyright
	$(PY) scripts/gen_protocol.py --check

clean:
	rm -rf $(VENV) .venv-* build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
