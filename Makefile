# retail.edge: one entry point for setup, tests and the lab demo.
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
export RETAIL_EDGE_VENV := $(VENV)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PYTEST_ARGS ?=

.PHONY: test-containers test-quick setup test demo demo-down lint sanity units build faults bench bench-quick clean

setup:
	scripts/setup.sh

test: setup
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-containers: setup
	$(VENV)/bin/pytest -m lab_containers $(PYTEST_ARGS)

test-quick: setup
	$(VENV)/bin/pytest -m "not lab_containers" $(PYTEST_ARGS)

lint:
	$(VENV)/bin/pytest tests/quality $(PYTEST_ARGS)

sanity:
	scripts/ansible_test.sh sanity

units:
	scripts/ansible_test.sh units

faults: setup
	$(VENV)/bin/pytest tests/faults $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/python bench/run_all.py

bench-quick: setup
	$(VENV)/bin/python bench/run_all.py --quick

build:
	$(VENV)/bin/ansible-galaxy collection build --force --output-path .build/dist .

demo: setup
	scripts/demo.sh

demo-down:
	scripts/demo.sh down

clean:
	rm -rf .build tests/output .pytest_cache .ruff_cache
