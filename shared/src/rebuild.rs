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
/// (a pending update is the engine's to carry on): it names the resource and makes it again
/// when it is gone, but is never merged into the desired state as a request (its fields come
/// from several requests; see [`crate::engine::Engine::resume`]). Any other stands for the
/// request its generation is created with (`requested`), else what was applied. An item that records neither (an
/// operator's retry that cleared its request, an item from before requests were recorded)
/// stands for no request: it waits for one, rather than a resource being made as nobody asked.
pub fn request_of<S: Step>(record: &Record) -> Result<OnboardingRequest, String> {
    let recorded =
        |fields: &Option<Fields>, revision: &Option<Revision>| fields.clone().zip(revision.clone());
    let applied = recorded(&record.state, &record.applied_revision);
    let requested = recorded(&record.requested, &record.requested_revision);
    let (fields, revision) = match record.status {
        Status::Ready => applied.or(requested),
        _ => requested.or(applied),
    }
    .ok_or_else(|| {
        format!(
            "{} ({}, generation {}) records no request to make it with; the next request for \
             it does",
            record.key, record.status, record.generation
        )
    })?;
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;
    use crate::ledger::schema;
    use crate::steps::IdentityCenterInstance;

    fn record(extra: &[(&str, &str)]) -> Record {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let mut item = HashMap::from([
            (schema::PK.to_owned(), s("account#123456789012")),
            (schema::SK.to_owned(), s("identity-center-instance")),
            (schema::STATUS.to_owned(), s("IN_PROGRESS")),
            (schema::CLIENT_TOKEN.to_owned(), s("tok")),
            (schema::GENERATION.to_owned(), AttributeValue::N("1".into())),
            (schema::ATTEMPT.to_owned(), AttributeValue::N("0".into())),
        ]);
        item.extend(extra.iter().map(|(k, v)| (k.to_string(), s(v))));
        Record::from_item(&item).expect("a ledger item")
    }

    #[test]
    fn a_generation_is_made_with_its_recorded_request_and_never_with_none() {
        let asked = record(&[
            (schema::REQUESTED, r#"{"name":"payments"}"#),
            (
                schema::REQUESTED_REVISION,
                "2026-12-10T09:00:00.000Z#reopening",
            ),
        ]);
        let request = request_of::<IdentityCenterInstance>(&asked).expect("rebuilt");
        assert_eq!(request.event_id, "reopening");
        assert_eq!(request.instance.name.as_deref(), Some("payments"));

        // An operator's retry that cleared the request, and nothing applied: no request to
        // make it with, so nothing is made until one comes.
        let err = request_of::<IdentityCenterInstance>(&record(&[])).unwrap_err();
        assert!(err.contains("records no request"), "{err}");
    }
}
