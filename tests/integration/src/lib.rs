//! Local AWS stand-ins for the integration tests.
