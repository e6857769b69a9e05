//! Integration tests: the real server on a temporary Unix socket, called with a generated tonic client
//! the way the driver does, against fakes of Entra ID and Key Vault served over HTTPS with a test CA.

mod clouds;
mod daemon;
mod driver_v15;
mod fakes_smoke;
mod identity;
mod mount;
mod objects;
mod support;
mod validation;
mod versions;
