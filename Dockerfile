# syntax=docker/dockerfile:1
# The service images: one Dockerfile, one image per binary, chosen with the SERVICE build argument
# (gateway, identity, broker, audit, vendors or nia-mock), named as k8s/ expects:
#   docker build --build-arg SERVICE=identity -t <registry>/immilink/identity:0.1.0 .
# The build stage compiles all six binaries and does not depend on SERVICE, so the six builds share
# it (BuildKit reuses the stage). Each image holds its one binary as /usr/local/bin/immilink, its
# entrypoint; a command is an argument (`migrate`, `link-sweep`, `dispose`, ...), as in k8s/base.
# It runs as uid/gid 10001, needs no shell, writes nothing to its root filesystem (PostgreSQL holds
# the data, Secrets are mounted read-only) and needs no capability: it fits the read-only root
# filesystem, dropped capabilities and Pod Security "restricted" profile of the manifests.
# No Docker engine runs on the project's machines, so this file is reviewed there, not built
# (README, k8s/README.md).

# rust-version in Cargo.toml: the oldest Rust that builds everything in Cargo.lock (parking_lot 0.13 needs 1.95).
ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN} AS build
# libpq: diesel's PostgreSQL backend links it (SQLite is bundled and compiled from source).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The target folder is a cache mount (kept between builds, never in an image): copy the binaries out.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
      -p immilink-gateway -p immilink-identity -p immilink-broker \
      -p immilink-audit -p immilink-vendors -p immilink-nia-mock \
 && mkdir /out \
 && for bin in gateway identity broker audit vendors nia-mock; do cp "target/release/immilink-$bin" /out/; done

# Debian slim, not distroless: libpq comes with some twenty shared libraries (OpenSSL, Kerberos,
# LDAP, GnuTLS, ...); Debian's libpq5 package installs and updates them as one, where distroless
# would need that closure copied in by hand. Same Debian release as the build stage (glibc).
FROM debian:${DEBIAN}-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Declared after the shared layers above, so only the copy differs between the six images.
ARG SERVICE
LABEL org.opencontainers.image.title="immilink-${SERVICE}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/immilink-${SERVICE} /usr/local/bin/immilink
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/immilink"]
