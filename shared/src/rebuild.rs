//! The request a ledger item stands for, rebuilt without its message: the key says which
//! account (and, for some steps, more: a portal and a provider); the recorded fields say what
//! was asked; the revision keeps its place in time. Secrets are named only, and read by name
//! again when they are needed. What is common to every step is here; each step reads its own
//! part ([`Step::request_from`]), and [`crate::steps::Known`] says which step a key is.
//! The reconciler re-drives and audits steps with it, and a delivery that takes over a
//! generation creates with the request that generation's create was first made for.

use std::collections::BTreeMap;

use crate::events::{InstanceSpec, OnboardingRequest, Origin as RequestOrigin};
use crate::ledger::{Fields, Record, Status, StepKey};
use crate::revision::{normalize_time, Revision};
use crate::step::Step;

/// The account named in rebuilt requests of the organization's step (it uses none).
const NO_ACCOUNT: &str = "000000000000";

/// The request a step's ledger item stands for. A `READY` step stands for its applied state
/// (a pending update is the engine's to carry on); any other for the request its generation
/// is created with (`requested`), else what was applied.
pub fn request_of<S: Step>(record: &Record) -> Result<OnboardingRequest, String> {
    let recorded =
        |fields: &Option<Fields>, revision: &Option<Revision>| fields.clone().zip(revision.clone());
    let applied = recorded(&record.state, &record.applied_revision);
    let requested = recorded(&record.requested, &record.requested_revision);
    let (fields, revision) = match record.status {
        Status::Ready => applied.or(requested),
        _ => requested.or(applied),
    }
    .unwrap_or_else(|| {
        let unknown = Revision::parse(&format!("0000-00-00T00:00:00.000Z#{}", record.key));
        (Fields::new(), unknown)
    });
    request_from::<S>(&record.key, &fields, &revision)
}

/// The request for step `key` that asks for `fields`, at `revision`.
pub fn request_from<S: Step>(
    key: &StepKey,
    fields: &Fields,
    revision: &Revision,
) -> Result<OnboardingRequest, String> {
    let time = normalize_time(revision.time()).map(|_| revision.time().to_string());
    let mut request = OnboardingRequest {
        event_id: revision.event_id().to_string(),
        origin: RequestOrigin::OnboardingRequested,
        replay_name: None,
        time,
        account_id: key.account_id().unwrap_or(NO_ACCOUNT).to_string(),
        account_name: None,
        instance: InstanceSpec::default(),
        web_identity_provider: None,
    };
    if request.event_id.is_empty() {
        request.event_id = format!("reconciler:{key}");
    }
    S::request_from(key, fields, request)
}

/// A recorded text field.
pub(crate) fn text(fields: &Fields, name: &str) -> Option<String> {
    fields.get(name).and_then(|v| v.as_str()).map(str::to_owned)
}

/// A recorded map of strings (empty when absent).
pub(crate) fn map(fields: &Fields, name: &str) -> BTreeMap<String, String> {
    fields
        .get(name)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}
