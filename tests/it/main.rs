//! Integration tests: the real server on a temporary Unix socket, called with a generated tonic
//! client the way the driver does, against the `akv-emulator` crate's Entra ID, Key Vault and
//! IMDS/NMI, served over HTTPS with the CA it generates.

mod clouds;
mod daemon;
mod demo;
mod driver_v15;
mod identity;
mod load;
mod mount;
mod objects;
mod support;
mod validation;
mod versions;
