//! The library every onboarding function shares: the idempotency ledger, event decoding,
//! the step engine and the AWS adapters.
pub mod events;
pub mod ledger;
