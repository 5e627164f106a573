//! Local AWS stand-ins for the integration tests.
pub mod moto;
