//! The library every onboarding function shares: the idempotency ledger, event decoding,
//! the step engine and the AWS adapters.
pub mod announce;
pub mod aws;
pub mod engine;
pub mod error;
pub mod events;
pub mod handler;
pub mod lambda;
pub mod ledger;
pub mod organizations;
pub mod rebuild;
pub mod reconcile;
pub mod redelivery;
pub mod revision;
pub mod settings;
pub mod step;
pub mod steps;
pub mod telemetry;
