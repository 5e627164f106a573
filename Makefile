# identity-onboarding: the commands users and CI run. Everything it needs is installed into
# project-local virtualenvs (.venv*, git-ignored); Rust builds share one target dir outside
# the clone so repeated runs are incremental.

export CARGO_TARGET_DIR ?= $(HOME)/.cache/identity-onboarding/target
export CARGO_TERM_COLOR ?= never
# aws-lc's jitter entropy source adds ~50 ms to every cold start.
export AWS_LC_SYS_NO_JITTER_ENTROPY = 1

VENV := .venv
CARGO := cargo

.PHONY: help venv test test-rust lint fmt demo replay bench check-template sam-build clean-venvs

help:
	@echo "make demo            run the onboarding locally against local AWS stand-ins"
	@echo "make test            run every test (unit, integration, template checks)"
	@echo "make lint            cargo fmt --check and clippy -D warnings"
	@echo "make replay [N= SEED=]  the full event replay torture run"
	@echo "make bench           cold start, memory, size and batch benchmarks"

venv: $(VENV)/bin/moto_server
$(VENV)/bin/moto_server: tests/tools/requirements-moto.txt tests/tools/venv.sh
	tests/tools/venv.sh $(VENV) tests/tools/requirements-moto.txt
	@touch $@

test: venv test-rust check-template

test-rust: venv
	$(CARGO) test --workspace --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

check-template:
	tests/tools/check-template

sam-build:
	tests/tools/sam-build

clean-venvs:
	rm -rf .venv .venv-*
