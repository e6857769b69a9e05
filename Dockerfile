# Build: docker build -t akv-csi-provider:0.1.0 .
# Untested on the project's build machines (no container engine there). Pin both base images by digest in
# your own build; they are referenced by tag here because digests cannot be looked up offline.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# The context is what .dockerignore allows (an allowlist; deploy/docker_context_check.py checks it).
COPY . .
# Without the default `emulator` feature: the image carries the daemon, `check` and `mount`, not the emulator.
RUN cargo build --release --locked --no-default-features -p akv-csi-provider \
 && cp target/release/akv-csi-provider /akv-csi-provider

# distroless/cc: glibc and the CA bundle (/etc/ssl/certs), no shell.
FROM gcr.io/distroless/cc-debian12
COPY --from=build /akv-csi-provider /bin/akv-csi-provider
ENTRYPOINT ["/bin/akv-csi-provider"]
