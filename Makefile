# docent — developer and operator entry points. The README's two commands are `make run` and
# `make test`; CI (.ci/run) calls `make ci`.

CARGO ?= cargo
# Extra arguments for `docent serve`, e.g. `make run ARGS="--bind 0.0.0.0:8080"`.
ARGS ?=

.PHONY: run build test lint fmt ci clean-data

## Build in release mode and run `docent serve` on the embedded default (./docent-data).
run:
	$(CARGO) run --release --locked -p docent -- serve $(ARGS)

## Release binary at target/release/docent.
build:
	$(CARGO) build --release --locked -p docent

## The whole test suite (unit, repository, queue contract, API, process and CLI tests).
test:
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
