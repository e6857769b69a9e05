//! akv-csi-provider: an Azure Key Vault provider for the Kubernetes Secrets Store CSI Driver.
//!
//! The driver calls `Mount` over gRPC on a Unix socket for every pod volume; we turn the
//! SecretProviderClass parameters into a validated plan, get an Entra ID token for the pod's identity,
//! fetch the Key Vault objects concurrently, convert them and return the files. The layout follows the
//! request: [`server`] (socket, gRPC, health) → [`mount`] (parse, validate, plan, assemble) →
//! [`auth`] (identity modes, token cache) and [`keyvault`] (REST client) → [`convert`] (pure format
//! conversions). ARCHITECTURE.md at the repository's root describes the layers and their rules.
//!
//! Only what the binary, the integration tests, the benchmarks and the fuzz targets use is public;
//! the rest is `pub(crate)`.
#![forbid(unsafe_code)]
// Functions of at most 80 lines (clippy.toml) outside tests.
#![cfg_attr(not(test), warn(clippy::too_many_lines))]
#![warn(missing_docs)]

pub(crate) mod auth;
pub mod cli;
pub mod cloud;
pub mod coalesce;
pub mod config;
pub mod convert;
pub(crate) mod http;
pub(crate) mod keyvault;
pub mod logging;
pub mod metrics;
pub mod mount;
pub(crate) mod retry;
pub mod server;
pub(crate) mod throttle;

/// Generated code for the `v1alpha1` provider contract (`proto/service.proto`).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("v1alpha1");
    mod redact;
}

pub use config::Config;
pub use server::run;
