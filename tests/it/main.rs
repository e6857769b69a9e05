//! Integration tests: the real server on a temporary Unix socket, called with a generated tonic
//! client the way the driver does, against the `akv-emulator` crate's Entra ID, Key Vault and
//! IMDS/NMI, served over HTTPS with the CA it generates.

mod additions;
mod cli;
mod clouds;
mod daemon;
mod demo;
mod driver_v15;
mod faults;
mod identity;
mod limits;
mod load;
mod mount;
mod objects;
mod observability;
mod pfx;
mod support;
mod trust;
mod validation;
mod versions;
