//! The library every onboarding function shares: the idempotency ledger, event decoding,
//! the step engine and the AWS adapters.
//!
//! A map. The data path runs down: `functions/*/src/main.rs` -> [`lambda`] (wiring) ->
//! [`handler`] (a payload in: EventBridge event or SQS batch) -> [`events`] (decoded and
//! validated requests) -> [`engine`] (one runner for every step) -> a step; [`reconcile`]
//! runs what no event finishes through the same engine, rebuilding requests ([`rebuild`]).
//!
//! - **Steps** are defined in [`steps`], one file each, implementing the [`step::Step`]
//!   trait; [`steps::Known`] is the registry of which step a ledger key belongs to.
//! - **Idempotency** lives in [`ledger`]: one DynamoDB item per step keyed by its business
//!   key ([`ledger::StepKey`]), taken with one conditional write (the claim), held under a
//!   lease whose owner (new at each claim) fences every later write; the ClientToken
//!   ([`ledger::client_token`], per generation) and the update token ([`ledger::update_token`],
//!   per desired version, bound to each call's parameters by [`ledger::call_token`]) make
//!   retried AWS calls the same call. [`revision`] orders requests; [`desired`] merges what
//!   they ask, field by field, the newest winning.
//! - **Announcements** ([`announce`]) follow their record: an outcome is written first (a
//!   READY step's update or drift with its event in the step's outbox), then sent, then
//!   marked; whatever is unsent stays in the attention index for the reconciler.
//! - **AWS** is touched in: DynamoDB, [`ledger`] only; STS (AssumeRole into member accounts),
//!   [`aws`]; sso-admin, [`steps`]`/identity_center_instance.rs`; WorkSpaces Web and Secrets
//!   Manager, `steps/web_identity_provider.rs`; MPA, `steps/approval_identity_source.rs`;
//!   EventBridge PutEvents, [`announce`]; SQS visibility, [`redelivery`]; Organizations,
//!   [`organizations`]. CloudWatch metrics are log lines ([`telemetry`], EMF).
//! - **Errors** are classified once, in [`error`]: one table of what passes with time
//!   ([`retryable`]), one class per error ([`error::Class`]), the engine's own codes in
//!   [`error::code`]. Time as the ledger stores it, and the one jitter, are in [`clock`].
pub mod announce;
pub mod aws;
pub mod clock;
pub mod desired;
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
pub mod retryable;
pub mod revision;
pub mod settings;
pub mod step;
pub mod steps;
pub mod telemetry;
