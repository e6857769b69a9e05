# Build: docker build -t akv-csi-provider:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && cp target/release/akv-csi-provider /akv-csi-provider

# distroless/cc: glibc and the CA bundle (/etc/ssl/certs), no shell.
FROM gcr.io/distroless/cc-debian12
COPY --from=build /akv-csi-provider /bin/akv-csi-provider
ENTRYPOINT ["/bin/akv-csi-provider"]
