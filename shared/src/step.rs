//! What a step is: the four things that differ between the three functions. Everything else
//! (claiming, reconciling, recording, waiting, announcing) is the engine's, written once.

use std::future::Future;
use std::time::SystemTime;

use crate::error::StepError;
use crate::events::OnboardingRequest;
use crate::ledger::StepKey;

/// One unit of work a request asks for, at its scope.
pub struct Plan<I> {
    /// The business key: the ledger item and the ClientToken derive from it, never the event id.
    pub key: StepKey,
    /// The account the step is for, when it has one (logs, emitted events).
    pub account_id: Option<String>,
    /// The canonical request, hashed to detect "same key, different request". No secret
    /// values: only references to them.
    pub canonical: serde_json::Value,
    /// What the step needs to act.
    pub input: I,
}

/// What a lookup found under the step's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Existing {
    /// There, and provably what the request asks for: adoptable. `created_at` when the
    /// service tells, so the engine can tell "ours, response lost" from "there before us".
    Matches {
        arn: String,
        created_at: Option<SystemTime>,
    },
    /// There, but not ours to adopt (another team's provider, a failed instance): the
    /// permanent failure to record. Never announced Ready.
    Conflicts(StepError),
}

/// Where a created resource stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Still being created; carries the status the service reported.
    Pending(String),
    /// The service gave up on it: a permanent failure with its reason.
    Failed(StepError),
}

/// A step of the onboarding. `Api` is the service client acting where the step runs (in the
/// member account after AssumeRole, or in the management account); it is built only once a
/// delivery needs to call the service, so a duplicate costs no STS call.
pub trait Step: Send + Sync {
    /// Name used in logs, metrics and emitted events ("identity-center-instance").
    const NAME: &'static str;
    /// detail-type announced when the step is ready.
    const READY_DETAIL_TYPE: &'static str;

    type Input: Send + Sync;
    type Api: Send + Sync;

    /// The step's plan for a request, or `Err(reason)` when the request does not ask for it.
    fn plan(&self, request: &OnboardingRequest) -> Result<Plan<Self::Input>, String>;

    /// A client acting where the step runs.
    fn connect(
        &self,
        input: &Self::Input,
    ) -> impl Future<Output = Result<Self::Api, StepError>> + Send;

    /// The resource under the step's key, if one exists: called when an earlier attempt may
    /// have created it (its response lost, its token perhaps forgotten by the service) and
    /// when a create answers that one exists. Adoptable only if provably what was asked.
    fn lookup(
        &self,
        api: &Self::Api,
        input: &Self::Input,
    ) -> impl Future<Output = Result<Option<Existing>, StepError>> + Send;

    /// Creates the resource with the ledger's ClientToken; returns its ARN.
    fn create(
        &self,
        api: &Self::Api,
        input: &Self::Input,
        client_token: &str,
    ) -> impl Future<Output = Result<String, StepError>> + Send;

    /// Whether the resource is usable yet. Steps whose resource is ready on creation answer
    /// `Ready` without a call.
    fn readiness(
        &self,
        api: &Self::Api,
        arn: &str,
    ) -> impl Future<Output = Result<Readiness, StepError>> + Send;

    /// True when `create` returns a resource that is ready at once (no CREATED state).
    fn ready_on_create(&self) -> bool {
        false
    }

    /// Whether a create error says the resource already exists (look it up, then adopt it or
    /// name it). Conflict for most services; the step may add its own.
    fn says_exists(&self, e: &StepError) -> bool {
        e.code() == CONFLICT
    }
}

/// The error code of a create that found its resource (or a concurrent write) in the way.
pub const CONFLICT: &str = "ConflictException";
