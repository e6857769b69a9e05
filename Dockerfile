# The akv-csi-provider image. Build (one command, from the repository root):
#   docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD) -t akv-csi-provider:0.1.0 .
# The binary is built without the default `emulator` feature (the daemon, `check` and `mount`; not the
# emulator) and linked statically against glibc (static-pie, `+crt-static`): the runtime base then needs no
# C library, only what distroless/static has (CA bundle, /etc/nsswitch.conf, /etc/passwd, netbase's
# /etc/services), and DNS still goes through glibc's resolver (resolv.conf search, ndots, options as
# Kubernetes writes them). deploy/image-check.sh builds this file in CI and runs the chart's pod with it.
#
# Base images are build arguments: pin them by digest in your own build (they cannot be looked up by
# digest offline, where CI builds), e.g. --build-arg RUNTIME_IMAGE=gcr.io/distroless/static-debian12@sha256:...
ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12

FROM ${RUST_IMAGE} AS build
# valgrind records the code the daemon runs from start to idle; deploy/release-build.sh links that code
# together, which halves the idle daemon's resident memory (BENCHMARKS.md, "Idle memory").
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends valgrind \
 && rm -rf /var/lib/apt/lists/*
# The commit --version reports: the context has no .git (.dockerignore), so build.rs cannot read it.
ARG GIT_COMMIT=unknown
WORKDIR /src
# The context is what .dockerignore allows (an allowlist; deploy/docker_context_check.py checks it).
COPY . .
# deploy/release-build.sh: cargo build --release --locked --no-default-features for the host's own triple
# (so that an arm64 build builds for arm64), static-pie (+crt-static), in two passes (start-up code laid out
# together; x86_64 only). deploy/image-check.sh builds the binary CI checks with the same script. The
# script fails if valgrind cannot record the start-up; --build-arg AKV_LAYOUT=off builds in one pass instead
# (the same code; idle memory about twice as large).
ARG AKV_LAYOUT=on
RUN GIT_COMMIT="$GIT_COMMIT" AKV_LAYOUT="$AKV_LAYOUT" bash deploy/release-build.sh /akv-csi-provider

# What both runtime stages below share.
FROM ${RUNTIME_IMAGE} AS runtime-base
ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="akv-csi-provider" \
      org.opencontainers.image.description="Azure Key Vault provider for the Secrets Store CSI Driver" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.revision="${GIT_COMMIT}"
# The chart runs it as UID 0 with every capability dropped and a read-only root filesystem; it only
# needs to create its socket in the host directory mounted at /provider.
ENTRYPOINT ["/bin/akv-csi-provider"]

# `--target prebuilt`: the runtime stage from a binary built beforehand, built the same way as above, in
# a context directory that holds it as prebuilt/akv-csi-provider (CI: deploy/image-check.sh builds it
# once on the host instead of compiling again inside a container). Not the repository's context.
FROM runtime-base AS prebuilt
COPY --chmod=0755 prebuilt/akv-csi-provider /bin/akv-csi-provider

# The default (last) stage: the binary compiled in `build`.
FROM runtime-base AS runtime
COPY --from=build --chmod=0755 /akv-csi-provider /bin/akv-csi-provider
