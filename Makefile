# Prefect on ECS Fargate, deployed by Ansible. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV  := .venv
PY    := $(VENV)/bin/python
STACK := $(PY) scripts/local_stack.py
ENV   ?= local
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# The test suite runs on its own instance of the local stack (own ports and state folder, see
# scripts/local_stack.py), so `make test` never touches the stack `make demo` deployed.
TEST_STACK := LOCAL_STACK_INSTANCE=test $(STACK)
TEST2_STACK := LOCAL_STACK_INSTANCE=test2 $(STACK)
TEST3_STACK := LOCAL_STACK_INSTANCE=test3 $(STACK)
TEST4_STACK := LOCAL_STACK_INSTANCE=test4 $(STACK)

.PHONY: help setup venv system-deps up down status reset demo test test-fast test-down lint site teardown \
        clean lock build bench

help: ## List targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

venv: ## Create .venv (Python 3.12) with the pinned requirements
	@scripts/bootstrap.sh

system-deps: ## Install Debian packages for the local stack (registry, podman, buildah, mmdebstrap for the base image)
	@scripts/system_deps.sh

setup: venv system-deps ## venv + Debian packages

up: setup ## Start the local stack (moto, Prefect server, fixtures, registry, Fargate stand-in, base image) on loopback
	@echo "local stack:"; $(STACK) up

down: ## Stop exactly the local-stack processes this project started
	@if [ -x $(PY) ]; then echo "local stack:"; $(STACK) down; fi

status: ## Show local-stack services and their health
	@$(STACK) status

reset: ## Wipe the AWS emulator's state (moto) and switch its IAM enforcement off
	@$(STACK) reset

demo: up ## Whole product on the local stack: site.yml, a run of each demo deployment on ECS, summary
	@$(PY) scripts/demo.py

site: setup ## ansible-playbook site.yml on inventories/ENV (ENV=local by default; ARGS=... passes options)
	ansible-playbook site.yml -i inventories/$(ENV) $(ARGS)

teardown: setup ## ansible-playbook teardown.yml on inventories/ENV (ENV=local by default)
	ansible-playbook teardown.yml -i inventories/$(ENV) $(ARGS)

# Three pytest-xdist workers, each on its own stack instance (test, test2, test3). A playbook run keeps about one
# core busy and waits on the emulator, Prefect and the Fargate stand-in between tasks: two workers left the two
# cores 26 % idle (stop 24's CI: 51 CPU-min, pytest 32.5 min); three: 50.6 CPU-min, pytest 28.5 min; four were
# slower (54.7 CPU-min, pytest 30.5 min: contention). TEST_WORKERS=4 uses the fourth instance on a bigger machine.
# Whole files per worker, longest first (tests/conftest.py). The stacks start while lint runs.
TEST_WORKERS ?= 3
test: setup ## Everything CI runs: lint, unit, integration, molecule (on the suite's own three stack instances)
	@mkdir -p .cache; ($(TEST_STACK) up && $(TEST2_STACK) up && $(TEST3_STACK) up && { [ $(TEST_WORKERS) -lt 4 ] || $(TEST4_STACK) up; }) \
	  > .cache/test-stacks-up.log 2>&1 & stacks=$$!; \
	  $(MAKE) lint; lint=$$?; wait $$stacks; up=$$?; \
	  echo "test stacks (leave a demo stack alone):"; cat .cache/test-stacks-up.log; \
	  [ $$lint -eq 0 ] && [ $$up -eq 0 ]
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25 $(PYTEST_ARGS)

test-down: ## Stop the test suite's stack instances
	@if [ -x $(PY) ]; then echo "test stacks:"; $(TEST_STACK) down; $(TEST2_STACK) down; $(TEST3_STACK) down; $(TEST4_STACK) down; fi

# Twice as many xdist workers as cores: the unit tests also wait on subprocesses and loopback sockets (the
# forkserver's playbooks, throw-away moto servers); on 2 cores 4 workers took 47 s, 2 workers 54 s.
TEST_FAST_WORKERS ?= $(shell echo $$(( $$(nproc) * 2 )))
test-fast: venv ## Unit tests only: no servers, spread over the cores (pytest-xdist)
	$(PY) -m pytest -m "not integration and not molecule" -n $(TEST_FAST_WORKERS) $(PYTEST_ARGS)

lint: venv ## yamllint + ansible-lint (profile production) + ansible-test sanity
	yamllint -s .
	ansible-lint
	$(MAKE) sanity

# ansible-test sanity on a copy of the collection (tests/sanity/run.sh says why and what), Python 3.12.
# pylint is left out: its ansible-test profile flags pytest idioms (`_` names, subprocess.run without
# check=) across tests/unit; every other test of the list runs.
SANITY_ARGS ?= --skip-test pylint
.PHONY: sanity
sanity: venv ## ansible-test sanity (Python 3.12) on the collection's plugins, roles, playbooks, unit tests
	tests/sanity/run.sh $(SANITY_ARGS)

bench: up ## Benchmarks (measure and print; not tests)
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

build: venv ## Build the collection tarball
	ansible-galaxy collection build --force --output-path .cache/dist .

lock: ## Recompile requirements.txt from requirements.in
	.cache/uv-tool/bin/uv pip compile --python-version 3.12 requirements.in -o requirements.txt

clean: ## Stop every stack instance and remove their state (emulator, Prefect DB, images) and caches
	@if [ -x $(PY) ]; then $(STACK) clean; $(TEST_STACK) clean; $(TEST2_STACK) clean; $(TEST3_STACK) clean; $(TEST4_STACK) clean; fi
	rm -rf .cache/dist .pytest_cache
