//! Local AWS stand-ins for the integration tests.
pub mod deliveries;
pub mod iam;
pub mod local;
pub mod moto;
pub mod replay;
pub mod stack;
