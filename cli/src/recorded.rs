//! The request a ledger item recorded, as an event to publish again. The step the key
//! belongs to (the step registry, [`Known`]) rebuilds the request from the recorded fields
//! ([`onboarding::rebuild`]); the recorded revision (`<time>#<event id>`) gives it its time
//! and event id back. The event is what the project's own `Account Onboarding Requested`
//! event says for that request: the decoder reads it back as the same request.

use onboarding::events::{Accept, OnboardingRequest, SCHEMA_VERSION};
use onboarding::ledger::Record;
use onboarding::rebuild;
use onboarding::step::Step;
use onboarding::steps::{project_tags, IdentityCenterInstance, Known, WebIdentityProvider};
use serde_json::{json, Map, Value};

use crate::publish::EventTime;

/// What the generation of `record` was first claimed with (`requested`, at
/// `requested_revision`), rebuilt by its step. `Err` says why it cannot be.
pub fn first_request(record: &Record) -> Result<OnboardingRequest, String> {
    let (Some(fields), Some(revision)) = (&record.requested, &record.requested_revision) else {
        return Err("the ledger item holds no recorded request (`requested`)".to_owned());
    };
    let rebuilt = match Known::of(&record.key) {
        Some(Known::Instance) => {
            rebuild::request_from::<IdentityCenterInstance>(&record.key, fields, revision)
        }
        Some(Known::Web) => {
            rebuild::request_from::<WebIdentityProvider>(&record.key, fields, revision)
        }
        Some(Known::Approval) => {
            Err("the organization's step records no account, so its request names none".to_owned())
        }
        None => Err(format!("{} is not a step this version knows", record.key)),
    };
    rebuilt.map(without_placeholder_time)
}

/// A request whose event had no time is recorded at the revisions' "no time" (older than any
/// real time), which is no time to publish: the request has none.
fn without_placeholder_time(mut request: OnboardingRequest) -> OnboardingRequest {
    if request
        .time
        .as_deref()
        .is_some_and(|t| EventTime::parse(t).is_err())
    {
        request.time = None;
    }
    request
}

/// A request for the account of a READY `identity-center-instance` item that asks its step
/// nothing (a duplicate for it), at the applied revision: it carries a request to the
/// organization's step. Not the applied state itself: that mixes fields of several requests,
/// and published as one request at the applied revision it would undo a field that a
/// request older than that revision, delivered late, asks for.
pub fn carrier_request(record: &Record) -> Result<OnboardingRequest, String> {
    let revision = record.applied_revision.as_ref().ok_or_else(|| {
        format!(
            "{} records no applied revision; send a request of that account with --event FILE",
            record.key
        )
    })?;
    rebuild::request_from::<IdentityCenterInstance>(&record.key, &Default::default(), revision)
        .map(without_placeholder_time)
}

/// The `detail` of the project's own event asking for `request`; only what the request
/// specifies (an account name, instance name, tags or provider it does not give is left out;
/// a tag it removes is `null`).
pub fn detail(request: &OnboardingRequest) -> Value {
    let mut detail = Map::new();
    detail.insert("schemaVersion".into(), json!(SCHEMA_VERSION));
    detail.insert("accountId".into(), json!(request.account_id));
    if let Some(name) = &request.account_name {
        detail.insert("accountName".into(), json!(name));
    }
    let mut instance = Map::new();
    if let Some(name) = &request.instance.name {
        instance.insert("name".into(), json!(name));
    }
    let instance_tags = project_tags::asked(&request.instance.tags, &request.instance.removed_tags);
    if let Some(tags) = instance_tags {
        instance.insert("tags".into(), tags);
    }
    if !instance.is_empty() {
        detail.insert("identityCenterInstance".into(), Value::Object(instance));
    }
    if let Some(p) = &request.web_identity_provider {
        let mut provider = Map::new();
        provider.insert("portalArn".into(), json!(p.portal_arn));
        provider.insert("providerName".into(), json!(p.provider_name));
        provider.insert("providerType".into(), json!(p.provider_type.as_str()));
        provider.insert("details".into(), json!(p.details));
        if let Some(secret) = &p.secret_id {
            provider.insert("secretId".into(), json!(secret));
        }
        if let Some(tags) = project_tags::asked(&p.tags, &p.removed_tags) {
            provider.insert("tags".into(), tags);
        }
        detail.insert("webIdentityProvider".into(), Value::Object(provider));
    }
    Value::Object(detail)
}

/// The event asking for `request`, with its event id and, when it has one, its time.
pub fn event(request: &OnboardingRequest, accept: &Accept) -> Value {
    let mut event = json!({
        "version": "0",
        "id": request.event_id,
        "source": accept.source,
        "detail-type": accept.detail_type,
        "resources": [],
        "detail": detail(request),
    });
    if let Some(time) = &request.time {
        event["time"] = json!(time);
    }
    event
}

/// Whether the step's plan of `request` asks what `record` recorded, field by field, for the
/// same key: the rebuilt event says what was recorded, no more and no less.
pub fn asks_as_recorded<S: Step>(
    step: &S,
    request: &OnboardingRequest,
    record: &Record,
) -> Result<(), String> {
    let plan = step.plan(request)?;
    if plan.key != record.key {
        return Err(format!("it would be for {}, not {}", plan.key, record.key));
    }
    match &record.requested {
        Some(fields) if *fields != plan.desired => Err(format!(
            "it would ask {} where the ledger recorded {}",
            Value::Object(plan.desired),
            Value::Object(fields.clone())
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onboarding::events::{decode, Decoded};
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;
    use onboarding::ledger::{schema, StepKey};

    const PORTAL: &str =
        "arn:aws:workspaces-web:us-east-1:222222222222:portal/0d5e1c8a-3b7f-4e2a-9c6d-1f2e3a4b5c6d";

    /// A FAILED item as the ledger stores it, with what its generation recorded.
    fn record(step: &str, requested: Option<Value>, revision: Option<&str>) -> Record {
        stored(&StepKey::account("222222222222", step), requested, revision)
    }

    fn stored(key: &StepKey, requested: Option<Value>, revision: Option<&str>) -> Record {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let mut item = HashMap::from([
            (schema::PK.to_owned(), s(&key.scope)),
            (schema::SK.to_owned(), s(&key.step)),
            (schema::STATUS.to_owned(), s("FAILED")),
            (schema::CLIENT_TOKEN.to_owned(), s("t")),
            (schema::GENERATION.to_owned(), AttributeValue::N("0".into())),
            (schema::ATTEMPT.to_owned(), AttributeValue::N("1".into())),
        ]);
        if let Some(fields) = requested {
            item.insert(schema::REQUESTED.to_owned(), s(&fields.to_string()));
        }
        if let Some(revision) = revision {
            item.insert(schema::REQUESTED_REVISION.to_owned(), s(revision));
        }
        Record::from_item(&item).expect("a ledger item")
    }

    fn decoded(event: &Value) -> OnboardingRequest {
        match decode(event, &Accept::default()) {
            Ok(Decoded::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn an_instance_request_is_rebuilt_with_its_fields_time_and_event_id() {
        let r = record(
            "identity-center-instance",
            Some(json!({ "name": "payments-prod", "tags": { "Team": "a" } })),
            Some("2024-03-01T10:00:00.000Z#e-10"),
        );
        let request = first_request(&r).expect("rebuilt");
        let event = event(&request, &Accept::default());
        assert_eq!(event["time"], "2024-03-01T10:00:00.000Z");
        assert_eq!(event["id"], "e-10");
        assert_eq!(
            event["detail"],
            json!({
                "schemaVersion": "1", "accountId": "222222222222",
                "identityCenterInstance": { "name": "payments-prod", "tags": { "Team": "a" } }
            })
        );
        // The decoder reads the event back as the same request, at the same revision.
        let back = decoded(&event);
        assert_eq!(back, request);
        assert_eq!(back.revision().as_str(), "2024-03-01T10:00:00.000Z#e-10");
    }

    #[test]
    fn a_provider_request_is_rebuilt_from_its_key_and_fields() {
        let step = format!("web-identity-provider#{PORTAL}#corp-oidc");
        let fields = json!({
            "type": "OIDC",
            "details": { "client_id": "c", "oidc_issuer": "https://idp.example.com",
                         "authorize_scopes": "openid", "attributes_request_method": "GET" },
            "secretId": "onboarding/corp-oidc",
            "tags": { "Team": "platform" }
        });
        let r = record(&step, Some(fields), Some("2024-03-01T10:00:00.000Z#w-1"));
        let request = first_request(&r).expect("rebuilt");
        let event = event(&request, &Accept::default());
        let provider = &event["detail"]["webIdentityProvider"];
        assert_eq!(provider["portalArn"], PORTAL);
        assert_eq!(provider["providerName"], "corp-oidc");
        assert_eq!(provider["providerType"], "OIDC");
        assert_eq!(provider["secretId"], "onboarding/corp-oidc");
        assert_eq!(provider["tags"], json!({ "Team": "platform" }));
        assert_eq!(decoded(&event), request);
    }

    #[test]
    fn what_cannot_be_rebuilt_says_why() {
        let none = record("identity-center-instance", None, None);
        assert!(first_request(&none)
            .expect_err("nothing recorded")
            .contains("requested"));
        let org = stored(
            &StepKey::org(
                "arn:aws:sso:::instance/ssoins-1",
                "approval-identity-source",
            ),
            Some(json!({})),
            Some("2024-03-01T10:00:00.000Z#o-1"),
        );
        assert!(first_request(&org)
            .expect_err("no account")
            .contains("no account"));
    }

    #[test]
    fn a_request_without_a_recorded_time_has_none() {
        let r = record(
            "identity-center-instance",
            Some(json!({})),
            Some("0000-00-00T00:00:00.000Z#e-1"),
        );
        let request = first_request(&r).expect("rebuilt");
        assert_eq!(request.time, None);
        let event = event(&request, &Accept::default());
        assert!(event.get("time").is_none(), "{event}");
        assert_eq!(
            event["detail"],
            json!({ "schemaVersion": "1", "accountId": "222222222222" })
        );
    }
}
