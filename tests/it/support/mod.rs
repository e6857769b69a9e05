//! Shared helpers for the integration tests: the harness around the real provider. The Azure
//! services it talks to are emulated by the `akv-emulator` workspace crate.
#![allow(dead_code)]

pub mod harness;
pub mod hygiene;
