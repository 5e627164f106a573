//! What a step is: what differs between the three functions. A step names itself and what it
//! announces, plans a request (its key, canonical request and wanted fields), rebuilds one
//! from the ledger, and makes the service calls (connect, look up, create, readiness and,
//! where it can change a resource, read and update). Everything else (claiming, reconciling,
//! recording, waiting, announcing) is the engine's, written once.

use std::future::Future;
use std::time::SystemTime;

use crate::error::StepError;
use crate::events::OnboardingRequest;
pub use crate::ledger::Fields;
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
    /// What the request asks of the resource, field by field, with only the fields it
    /// specifies: a field left out means "no preference" and never conflicts with another
    /// request's. No secret values (a secret's name at most). Merged over the applied state
    /// in revision order, it is what the resource is brought to.
    pub desired: Fields,
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
    /// detail-type announced when a later request changed the resource.
    const UPDATED_DETAIL_TYPE: &'static str;
    /// Fields of the state the service cannot show (a secret's name): the drift audit does
    /// not compare them.
    const UNOBSERVABLE: &'static [&'static str] = &[];

    type Input: Send + Sync;
    type Api: Send + Sync;

    /// The step's plan for a request, or `Err(reason)` when the request does not ask for it.
    fn plan(&self, request: &OnboardingRequest) -> Result<Plan<Self::Input>, String>;

    /// The request that `fields` stand for at `key` (what a request asked of this step, as the
    /// ledger recorded it; see [`crate::rebuild`]): `request` already carries the account,
    /// event id and time; the step adds what it reads. `Err(reason)` when the key or the
    /// fields cannot say it. Secrets are named only.
    fn request_from(
        key: &StepKey,
        fields: &Fields,
        request: OnboardingRequest,
    ) -> Result<OnboardingRequest, String>;

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

    /// Whether the resource is usable (yet). A resource the service no longer knows is a
    /// `ResourceNotFoundException` error (the drift audit calls this too).
    fn readiness(
        &self,
        api: &Self::Api,
        arn: &str,
    ) -> impl Future<Output = Result<Readiness, StepError>> + Send;

    /// The resource's current values of the fields in `wanted`, as far as the service tells
    /// (to decide whether an update whose outcome is unknown still needs its call; a field the
    /// service cannot show, such as a secret's name, is left out, so it is sent again).
    /// `applied` names what the project set before (tag keys to be gone). Steps with nothing
    /// to update answer `wanted` itself.
    fn current(
        &self,
        _api: &Self::Api,
        _input: &Self::Input,
        _arn: &str,
        _applied: &Fields,
        wanted: &Fields,
    ) -> impl Future<Output = Result<Fields, StepError>> + Send {
        let wanted = wanted.clone();
        async move { Ok(wanted) }
    }

    /// Brings the resource from `applied` to `wanted` (complete states: every field either
    /// state specifies). `token` is deterministic per step and revision, for the calls that
    /// take one. Steps with nothing to update do nothing.
    fn update(
        &self,
        _api: &Self::Api,
        _input: &Self::Input,
        _arn: &str,
        _applied: &Fields,
        _wanted: &Fields,
        _token: &str,
    ) -> impl Future<Output = Result<(), StepError>> + Send {
        async { Ok(()) }
    }

    /// Called once at the start of each invocation: anything a step keeps for one
    /// invocation only (a secret read once for a whole batch) is dropped here.
    fn begin_invocation(&self) {}

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
