# identity-onboarding: the commands users and CI run. Everything it needs is installed into
# project-local virtualenvs (.venv*, git-ignored); Rust builds share one target dir outside
# the clone so repeated runs are incremental.

export CARGO_TARGET_DIR ?= $(HOME)/.cache/identity-onboarding/target
export CARGO_TERM_COLOR ?= never
# Every call the tests make is evaluated against the shipped policies; the emulators write
# what they saw here, and `least-privilege` checks it against the policies both ways.
export IAM_OBSERVED_DIR ?= $(CARGO_TARGET_DIR)/iam-observed

VENV := .venv
VENV_SAM := .venv-sam
CARGO := cargo
# make replay: size and seed of the torture run (SEED empty = random, printed first).
N ?= 1000
SEED ?=

.PHONY: help venv venv-sam test test-rust lint fmt demo replay model bench check-template sam-build clean-venvs

help:
	@echo "make demo            run the onboarding locally against local AWS stand-ins"
	@echo "make test            run every test (unit, integration, template checks, sam build)"
	@echo "make lint            cargo fmt --check and clippy -D warnings"
	@echo "make replay [N= SEED=]  the full event replay torture run"
	@echo "make model [MODEL_DEPTH= MODEL_FAULTS= MODEL_ENV= MODEL_GENERATIONS=]  the ledger protocol model-checked deeper"
	@echo "make bench           cold start, memory, size and batch benchmarks"

venv: $(VENV)/bin/moto_server
$(VENV)/bin/moto_server: tests/tools/requirements-moto.txt tests/tools/venv.sh
	tests/tools/venv.sh $(VENV) tests/tools/requirements-moto.txt
	@touch $@

venv-sam: $(VENV_SAM)/bin/cargo-lambda
$(VENV_SAM)/bin/cargo-lambda: tests/tools/requirements-sam.txt tests/tools/venv.sh
	tests/tools/venv.sh $(VENV_SAM) tests/tools/requirements-sam.txt
	@touch $@

test: venv venv-sam test-rust check-template sam-build

# tests/integration/tests/events.rs runs the real binaries through cargo-lambda.
test-rust: venv venv-sam
	rm -rf $(IAM_OBSERVED_DIR) && mkdir -p $(IAM_OBSERVED_DIR)
	$(CARGO) test --workspace --locked
	$(CARGO) test --locked -p bench --features driver --bin bench
	tests/tools/least-privilege $(IAM_OBSERVED_DIR)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) clippy -p bench --all-targets --features driver --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

# make demo [KEEP=1]: KEEP=1 leaves the local stack up for hand invocations until Ctrl-C.
demo: venv venv-sam
	@echo "make demo: compiling the demo runner and the functions (a fresh clone: several minutes) ..."
	$(CARGO) run --locked -p integration-tests --bin demo $(if $(KEEP),-- --keep)

replay: venv
	REPLAY_N=$(N) REPLAY_SEED=$(SEED) $(CARGO) test --locked -p integration-tests --test replay -- --nocapture

# make model: the exhaustive check of the ledger protocol (tests/model), deeper than the
# bound `make test` runs (20 steps); prints states explored, depth and time.
MODEL_DEPTH ?= 26
model:
	MODEL_DEPTH=$(MODEL_DEPTH) $(CARGO) test --release --locked -p ledger-model --test check -- --nocapture

bench: venv venv-sam
	tests/bench/run

check-template:
	tests/tools/check-template

sam-build:
	tests/tools/sam-build

clean-venvs:
	rm -rf .venv .venv-*
