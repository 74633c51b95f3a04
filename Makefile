# Sandbox mesh: local set-up, images, tests and bring-up.
# `make test` runs everything from a fresh Debian 12 machine (as root):
# Docker engine (with gVisor where the distribution has it), virtualenv,
# images, a container on each gVisor runtime, then pytest.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
VENV_STAMP := $(VENV)/.installed

# Compose v2 plugin when the CLI has it, else the v1 `docker-compose`.
ifndef COMPOSE
COMPOSE := $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
endif
export COMPOSE

.PHONY: setup docker postgres venv protos images runtimes lint test up down clean logs ps bench bench-sessions bench-spawner doctor

setup: docker postgres venv

docker:
	scripts/ensure_docker.sh

# The server binaries the suite's throw-away PostgreSQL runs from (tests/postgres.py).
postgres:
	scripts/ensure_postgres.sh

venv: $(VENV_STAMP)

# Re-installed only when pyproject.toml changed since the last install.
$(VENV_STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -e '.[dev]'
	touch $@

protos: venv
	$(VENV)/bin/python scripts/gen_protos.py

images: setup
	images/build.sh

# Each gVisor runtime the engine offers (scripts/ensure_gvisor.sh registers
# them) runs a container of the runtime image; a failure is a warning only.
runtimes: images
	scripts/check_runtimes.sh

# Linter, formatter and type checker (configured in pyproject.toml) keep the
# tree clean: `make test` fails on any finding.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint runtimes
	$(VENV)/bin/pytest -q

up: runtimes
	scripts/up.sh

# Stops the mesh and keeps its data (executions, output files, artifacts,
# the egress's CA, package caches); `make clean` removes all the mesh made.
down:
	scripts/down.sh

clean:
	scripts/clean.sh

# The mesh brought up by scripts/up.sh (same project name): its services'
# logs, one JSON object a line (LOG_FORMAT=text for a human format), and
# its containers.
logs:
	scripts/compose.sh logs -f --tail=100

ps:
	scripts/compose.sh ps

# Through control, each figure beside its baseline (docs/performance.md):
# an in-process mesh of its own, or `make bench BENCH_ARGS="--target 127.0.0.1:50061"`.
BENCH_ARGS ?=
bench: venv
	$(VENV)/bin/python bench/bench_mesh.py $(BENCH_ARGS)

# Sessions (issue 12): the second call, CreateSession, an idle session's memory.
bench-sessions: venv
	$(VENV)/bin/python bench/bench_sessions.py $(BENCH_ARGS)

# The spawner alone against docker run (the first section of docs/performance.md).
bench-spawner: venv
	$(VENV)/bin/python bench/bench_execute.py

doctor:
	$(VENV)/bin/sandboxctl doctor
