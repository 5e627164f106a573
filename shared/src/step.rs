//! What a step is: the four things that differ between the three functions. Everything else
//! (claiming, reconciling, recording, waiting, announcing) is the engine's, written once.

use std::future::Future;

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

    /// The resource an earlier attempt may have created, if it exists.
    fn lookup(
        &self,
        api: &Self::Api,
        input: &Self::Input,
    ) -> impl Future<Output = Result<Option<String>, StepError>> + Send;

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
}
