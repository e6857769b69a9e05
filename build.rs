//! Generates the v1alpha1 provider service from `proto/` with a pure-Rust protobuf compiler
//! (protox), so building needs no `protoc` on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/service.proto");
    let fds = protox::compile(["proto/service.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // These carry the pod's service-account tokens, the driver's secrets and the mounted
        // contents: their `Debug` is written by hand (src/proto/redact.rs) and shows sizes only.
        .skip_debug([
            ".v1alpha1.MountRequest",
            ".v1alpha1.MountResponse",
            ".v1alpha1.File",
        ])
        .compile_fds(fds)?;
    Ok(())
}
