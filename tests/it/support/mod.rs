//! Shared helpers for the integration tests.
#![allow(dead_code)]

pub mod fake_azure;
pub mod fake_local;
pub mod harness;
pub mod pki;
