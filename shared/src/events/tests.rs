//! Decoding of real-shaped events and payloads, and every rejection naming its field.

use serde_json::{json, Value};

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("fixtures/", $name, ".json"))
    };
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

fn request(event: &Value) -> OnboardingRequest {
    match decode(event, &Accept::default()) {
        Ok(Decoded::Request(r)) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn ignored(event: &Value) -> String {
    match decode(event, &Accept::default()) {
        Ok(Decoded::Ignored { reason }) => reason,
        other => panic!("expected ignored, got {other:?}"),
    }
}

fn error(event: &Value) -> String {
    match decode(event, &Accept::default()) {
        Err(e) => {
            assert!(!e.reason.is_empty());
            e.reason
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

/// The full OIDC fixture, as a mutable value.
fn oidc() -> Value {
    parse(fixture!("own_oidc_full"))
}

/// Sets `event.detail.<path...>` (creating nothing: the path must exist up to the last key).
fn set(event: &mut Value, path: &[&str], value: Value) {
    let mut at = event.get_mut("detail").expect("detail");
    for key in &path[..path.len() - 1] {
        at = at.get_mut(*key).expect("path exists");
    }
    at.as_object_mut()
        .expect("object")
        .insert(path[path.len() - 1].to_owned(), value);
}

fn remove(event: &mut Value, path: &[&str]) {
    let mut at = event.get_mut("detail").expect("detail");
    for key in &path[..path.len() - 1] {
        at = at.get_mut(*key).expect("path exists");
    }
    at.as_object_mut()
        .expect("object")
        .remove(path[path.len() - 1]);
}

// ---------------------------------------------------------------- accepted events

#[test]
fn control_tower_create_succeeded_onboards_the_account() {
    let r = request(&parse(fixture!("ct_create_succeeded")));
    assert_eq!(r.event_id, "5c1e7a3b-0d2f-4e6a-8b9c-1d2e3f4a5b6c");
    assert_eq!(
        r.origin,
        Origin::ControlTower {
            event_name: "CreateManagedAccount".into()
        }
    );
    assert_eq!(r.account_id, "222233334444");
    assert_eq!(r.account_name.as_deref(), Some("payments-prod"));
    assert_eq!(r.instance, InstanceSpec::default());
    assert_eq!(r.web_identity_provider, None);
    assert_eq!(r.replay_name, None);
}

#[test]
fn control_tower_update_succeeded_onboards_the_account() {
    let r = request(&parse(fixture!("ct_update_succeeded")));
    assert_eq!(
        r.origin,
        Origin::ControlTower {
            event_name: "UpdateManagedAccount".into()
        }
    );
    assert_eq!(r.account_id, "222233334444");
}

#[test]
fn control_tower_in_progress_and_failed_are_ignored_with_state_and_message() {
    let reason = ignored(&parse(fixture!("ct_create_in_progress")));
    assert!(reason.contains("IN_PROGRESS"), "{reason}");
    assert!(reason.contains("222233334444"), "{reason}");
    assert!(reason.contains("started creating"), "{reason}");
    let reason = ignored(&parse(fixture!("ct_update_in_progress")));
    assert!(
        reason.contains("UpdateManagedAccount") && reason.contains("IN_PROGRESS"),
        "{reason}"
    );
    let reason = ignored(&parse(fixture!("ct_create_failed")));
    assert!(
        reason.contains("FAILED") && reason.contains("already in use"),
        "{reason}"
    );
}

#[test]
fn other_control_tower_and_organizations_events_are_ignored_not_errors() {
    let mut e = parse(fixture!("ct_create_succeeded"));
    set(&mut e, &["eventName"], json!("EnableGuardrail"));
    assert!(ignored(&e).contains("EnableGuardrail"));
    e["detail-type"] = json!("AWS API Call via CloudTrail");
    assert!(ignored(&e).contains("AWS API Call via CloudTrail"));
    let mut e = parse(fixture!("org_create_succeeded"));
    set(&mut e, &["eventName"], json!("InviteAccountToOrganization"));
    assert!(ignored(&e).contains("InviteAccountToOrganization"));
}

#[test]
fn organizations_create_account_result() {
    let r = request(&parse(fixture!("org_create_succeeded")));
    assert_eq!(r.origin, Origin::Organizations);
    assert_eq!(r.account_id, "333344445555");
    assert_eq!(r.account_name.as_deref(), Some("data-lake"));
    let reason = ignored(&parse(fixture!("org_create_failed")));
    assert!(
        reason.contains("FAILED") && reason.contains("EMAIL_ALREADY_EXISTS"),
        "{reason}"
    );
}

#[test]
fn own_minimal_request_gets_defaults() {
    let r = request(&parse(fixture!("own_minimal")));
    assert_eq!(
        r,
        OnboardingRequest {
            event_id: "4e9a5c1d-8f0b-4a4c-8d7e-9f0a1b2c3d4e".into(),
            origin: Origin::OnboardingRequested,
            replay_name: None,
            time: Some("2026-11-20T10:15:30Z".into()),
            account_id: "444455556666".into(),
            account_name: None,
            instance: InstanceSpec::default(),
            web_identity_provider: None,
        }
    );
}

#[test]
fn own_full_oidc_request() {
    let r = request(&oidc());
    assert_eq!(r.account_id, "123456789012");
    assert_eq!(r.account_name.as_deref(), Some("payments-prod"));
    assert_eq!(r.instance.name.as_deref(), Some("payments-prod"));
    assert_eq!(
        r.instance.tags.get("CostCenter").map(String::as_str),
        Some("1234")
    );
    let p = r.web_identity_provider.expect("provider");
    assert_eq!(
        p.portal_arn,
        "arn:aws:workspaces-web:us-east-1:123456789012:portal/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b"
    );
    assert_eq!(p.portal_account_id, "123456789012");
    assert_eq!(p.provider_name, "corp-oidc");
    assert_eq!(p.provider_type, ProviderType::Oidc);
    assert_eq!(p.details.len(), 4);
    assert_eq!(
        p.details.get("oidc_issuer").map(String::as_str),
        Some("https://idp.example.com")
    );
    assert_eq!(p.secret_id.as_deref(), Some("onboarding/corp-oidc"));
    assert_eq!(p.tags.get("Team").map(String::as_str), Some("platform"));
}

#[test]
fn own_saml_request_needs_no_secret() {
    let p = request(&parse(fixture!("own_saml")))
        .web_identity_provider
        .expect("provider");
    assert_eq!(p.provider_type, ProviderType::Saml);
    assert_eq!(p.secret_id, None);
    assert_eq!(
        p.details.get("IDPSignout").map(String::as_str),
        Some("true")
    );
}

#[test]
fn own_apple_request_names_its_secret_by_arn() {
    let p = request(&parse(fixture!("own_apple")))
        .web_identity_provider
        .expect("provider");
    assert_eq!(p.provider_type, ProviderType::SignInWithApple);
    assert!(p
        .secret_id
        .as_deref()
        .unwrap_or_default()
        .starts_with("arn:aws:secretsmanager:"));
    assert!(!p.details.contains_key("private_key"));
}

#[test]
fn archive_replay_keeps_its_name() {
    let r = request(&parse(fixture!("own_replay")));
    assert_eq!(
        r.replay_name.as_deref(),
        Some("onboarding-replay-2026-11-20")
    );
    assert_eq!(r.account_name.as_deref(), Some("sandbox"));
}

#[test]
fn configured_source_and_detail_type_are_honoured() {
    let accept = Accept::new("corp.onboarding", "Onboard Account");
    let mut e = parse(fixture!("own_minimal"));
    e["source"] = json!("corp.onboarding");
    e["detail-type"] = json!("Onboard Account");
    assert!(matches!(decode(&e, &accept), Ok(Decoded::Request(_))));
    // the default source is not accepted any more
    let e = parse(fixture!("own_minimal"));
    let err = decode(&e, &accept).unwrap_err();
    assert!(
        err.reason
            .starts_with("source: \"identity-onboarding\" is not accepted"),
        "{err}"
    );
}

#[test]
fn null_optional_fields_count_as_absent_and_extra_envelope_fields_are_fine() {
    let mut e = parse(fixture!("own_minimal"));
    set(&mut e, &["accountName"], Value::Null);
    set(&mut e, &["identityCenterInstance"], Value::Null);
    set(&mut e, &["webIdentityProvider"], Value::Null);
    e["some-future-envelope-field"] = json!({"x": [1, 2]});
    let r = request(&e);
    assert_eq!(r.account_name, None);
    assert_eq!(r.web_identity_provider, None);
}

#[test]
fn requests_serialize_with_api_provider_types() {
    let r = request(&oidc());
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["web_identity_provider"]["provider_type"], json!("OIDC"));
    assert_eq!(v["origin"], json!("OnboardingRequested"));
}

// ---------------------------------------------------------------- invocations

#[test]
fn direct_eventbridge_payload() {
    let e = parse(fixture!("ct_create_succeeded"));
    assert_eq!(
        invocation(e.clone()),
        Ok(Invocation::EventBridge(e.clone()))
    );
    let bytes = serde_json::to_vec(&e).unwrap();
    assert_eq!(
        invocation_from_slice(&bytes),
        Ok(Invocation::EventBridge(e))
    );
}

#[test]
fn sqs_standard_batch() {
    let Ok(Invocation::Sqs(records)) = invocation_from_slice(fixture!("sqs_standard").as_bytes())
    else {
        panic!("expected an SQS batch")
    };
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| !r.fifo && r.group_id.is_none()));
    assert_eq!(
        records[0].message_id,
        "00000001-1111-4222-8333-444455556661"
    );
    assert_eq!(records[0].receive_count, 3);
    assert_eq!(records[1].receive_count, 1);
    let accept = Accept::default();
    let decoded: Vec<Decoded> = records
        .iter()
        .map(|r| decode_body(&r.body, &accept).expect("decodes"))
        .collect();
    assert!(matches!(&decoded[0], Decoded::Request(r) if r.origin == Origin::OnboardingRequested));
    assert!(matches!(&decoded[1], Decoded::Request(r) if r.account_id == "222233334444"));
    assert!(matches!(&decoded[2], Decoded::Ignored { .. }));
}

#[test]
fn sqs_fifo_batch() {
    let Ok(Invocation::Sqs(records)) = invocation(parse(fixture!("sqs_fifo"))) else {
        panic!("expected an SQS batch")
    };
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r.fifo));
    assert_eq!(records[0].group_id.as_deref(), Some("account-444455556666"));
    assert_eq!(records[1].receive_count, 2);
    match decode_body(&records[1].body, &Accept::default()) {
        Ok(Decoded::Request(r)) => {
            assert_eq!(
                r.replay_name.as_deref(),
                Some("onboarding-replay-2026-11-20")
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn minimal_sqs_records_get_defaults() {
    let p = json!({"Records": [{"messageId": "m1", "body": "{}", "eventSource": "aws:sqs"}]});
    assert_eq!(
        invocation(p),
        Ok(Invocation::Sqs(vec![SqsRecord {
            message_id: "m1".into(),
            body: "{}".into(),
            group_id: None,
            receive_count: 1,
            fifo: false,
            receipt_handle: None,
            queue_arn: None,
        }]))
    );
    let p = json!({"Records": []});
    assert_eq!(invocation(p), Ok(Invocation::Sqs(vec![])));
}

#[test]
fn unusable_sqs_records_refuse_the_whole_batch() {
    let good = json!({"messageId": "m1", "body": "{}", "eventSource": "aws:sqs"});
    let cases = [
        (
            json!({"body": "{}", "eventSource": "aws:sqs"}),
            "Records[1].messageId: missing",
        ),
        (
            json!({"messageId": "", "body": "{}", "eventSource": "aws:sqs"}),
            "Records[1].messageId: empty",
        ),
        (
            json!({"messageId": 7, "body": "{}", "eventSource": "aws:sqs"}),
            "Records[1].messageId: expected a string, got a number",
        ),
        (
            json!({"messageId": "m2", "eventSource": "aws:sqs"}),
            "Records[1].body: missing",
        ),
        (
            json!({"messageId": "m2", "body": {"id": 1}, "eventSource": "aws:sqs"}),
            "Records[1].body: expected a string, got an object",
        ),
        (
            json!({"messageId": "m2", "body": "{}", "eventSource": "aws:sns"}),
            "Records[1].eventSource: expected \"aws:sqs\", got \"aws:sns\"",
        ),
        (
            json!({"messageId": "m2", "body": "{}"}),
            "Records[1].eventSource: missing",
        ),
        (
            json!({"messageId": "m2", "body": "{}", "eventSource": "aws:sqs", "attributes": {"ApproximateReceiveCount": "many"}}),
            "Records[1].attributes.ApproximateReceiveCount: expected a decimal count",
        ),
        (json!("m2"), "Records[1]: expected an object, got a string"),
    ];
    for (bad, want) in cases {
        let err = invocation(json!({"Records": [good.clone(), bad]})).unwrap_err();
        assert!(err.reason.starts_with(want), "{err} / {want}");
        if want.contains("messageId") {
            assert!(err.reason.contains("batchItemFailures"), "{err}");
        }
    }
    let err = invocation(json!({"Records": {"0": good}})).unwrap_err();
    assert_eq!(err.reason, "Records: expected an array, got an object");
}

#[test]
fn payloads_that_are_neither_are_refused() {
    assert!(invocation(json!([1]))
        .unwrap_err()
        .reason
        .starts_with("payload: expected a JSON object"));
    let err = invocation(json!({"source": "x", "detail": {}})).unwrap_err();
    assert!(err.reason.contains("missing detail-type"), "{err}");
    assert!(invocation(json!({})).is_err());
}

#[test]
fn raw_payload_errors() {
    let err = invocation_from_slice(b"{\"Records\": [\xff]}").unwrap_err();
    assert_eq!(err.reason, "payload: not valid UTF-8 (at byte 13)");
    let err = invocation_from_slice(b"{\"Records\": [").unwrap_err();
    assert!(err.reason.starts_with("payload: not valid JSON"), "{err}");
    let err = invocation_from_slice(b"").unwrap_err();
    assert!(err.reason.starts_with("payload: not valid JSON"), "{err}");
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let err = invocation_from_slice(deep.as_bytes()).unwrap_err();
    assert!(err.reason.contains("recursion limit"), "{err}");
    let err = decode_body(&deep, &Accept::default()).unwrap_err();
    assert!(err.reason.contains("recursion limit"), "{err}");
    // deep inside an otherwise valid event, too
    let body = fixture!("own_minimal").replacen(
        "\"schemaVersion\"",
        &format!(
            "\"x\": {}{}, \"schemaVersion\"",
            "{\"a\":".repeat(10_000),
            "}".repeat(10_000)
        ),
        1,
    );
    let err = decode_body(&body, &Accept::default()).unwrap_err();
    assert!(err.reason.contains("recursion limit"), "{err}");
}

#[test]
fn huge_strings_are_refused_cheaply() {
    let huge = "7".repeat(10 * 1024 * 1024);
    // as a raw payload
    let payload = format!(
        "{{\"Records\":[{{\"messageId\":\"m\",\"eventSource\":\"aws:sqs\",\"body\":\"{huge}\"}}]}}"
    );
    let err = invocation_from_slice(payload.as_bytes()).unwrap_err();
    assert!(
        err.reason.contains("exceeds the 6291456-byte limit"),
        "{err}"
    );
    // as an SQS body
    let err = decode_body(&huge, &Accept::default()).unwrap_err();
    assert!(
        err.reason.starts_with("body: 10485760 bytes exceeds"),
        "{err}"
    );
    // as a field of an already-parsed event
    for path in [
        &["accountId"][..],
        &["accountName"],
        &["webIdentityProvider", "providerName"],
        &["webIdentityProvider", "portalArn"],
    ] {
        let mut e = oidc();
        set(&mut e, path, json!(huge));
        let reason = error(&e);
        assert!(reason.len() < 400, "{path:?}: {} bytes", reason.len());
        assert!(
            reason.starts_with(&format!("detail.{}", path.join("."))),
            "{reason}"
        );
    }
    let mut e = oidc();
    e["id"] = json!(huge);
    assert!(error(&e).starts_with("id: expected 1-256 characters"));
}

// ---------------------------------------------------------------- rejections name the field

#[test]
fn wrong_source_is_refused() {
    let mut e = oidc();
    e["source"] = json!("aws.ec2");
    let reason = error(&e);
    assert!(
        reason.starts_with("source: \"aws.ec2\" is not accepted"),
        "{reason}"
    );
}

#[test]
fn unknown_detail_type_of_own_source_is_refused() {
    let mut e = oidc();
    e["detail-type"] = json!("Identity Center Instance Ready");
    let reason = error(&e);
    assert!(
        reason.starts_with("detail-type: \"Identity Center Instance Ready\" is not accepted from source \"identity-onboarding\""),
        "{reason}"
    );
}

#[test]
fn envelope_fields_are_required() {
    for (key, want) in [
        ("id", "id: missing"),
        ("source", "source: missing"),
        ("detail-type", "detail-type: missing"),
        ("detail", "detail: missing"),
    ] {
        let mut e = oidc();
        e.as_object_mut().unwrap().remove(key);
        assert_eq!(error(&e), want);
    }
    let mut e = oidc();
    e["id"] = json!("  ");
    assert_eq!(error(&e), "id: must not be empty");
    e["id"] = json!(12);
    assert_eq!(error(&e), "id: expected a string, got a number");
    let mut e = oidc();
    e["detail"] = json!("{}");
    assert_eq!(error(&e), "detail: expected an object, got a string");
    let mut e = oidc();
    e["replay-name"] = json!(["r"]);
    assert_eq!(error(&e), "replay-name: expected a string, got an array");
    assert_eq!(
        decode(&json!(null), &Accept::default()).unwrap_err().reason,
        "event: expected an object, got null"
    );
}

#[test]
fn bad_account_ids_are_refused() {
    let mut e = oidc();
    set(&mut e, &["accountId"], json!("12ab"));
    assert_eq!(
        error(&e),
        "detail.accountId: expected 12 digits, got \"12ab\""
    );
    set(&mut e, &["accountId"], json!(123456789012u64));
    assert_eq!(
        error(&e),
        "detail.accountId: expected a string, got a number"
    );
    remove(&mut e, &["accountId"]);
    assert_eq!(error(&e), "detail.accountId: missing");
    let mut ct = parse(fixture!("ct_create_succeeded"));
    set(
        &mut ct,
        &[
            "serviceEventDetails",
            "createManagedAccountStatus",
            "account",
            "accountId",
        ],
        json!("1234"),
    );
    assert_eq!(
        error(&ct),
        "detail.serviceEventDetails.createManagedAccountStatus.account.accountId: expected 12 digits, got \"1234\""
    );
    let mut org = parse(fixture!("org_create_succeeded"));
    remove(
        &mut org,
        &["serviceEventDetails", "createAccountStatus", "accountId"],
    );
    assert_eq!(
        error(&org),
        "detail.serviceEventDetails.createAccountStatus.accountId: missing"
    );
}

#[test]
fn malformed_aws_lifecycle_events_are_errors() {
    let mut ct = parse(fixture!("ct_create_succeeded"));
    remove(
        &mut ct,
        &["serviceEventDetails", "createManagedAccountStatus"],
    );
    assert_eq!(
        error(&ct),
        "detail.serviceEventDetails.createManagedAccountStatus: missing"
    );
    let mut ct = parse(fixture!("ct_update_succeeded"));
    remove(
        &mut ct,
        &[
            "serviceEventDetails",
            "updateManagedAccountStatus",
            "account",
        ],
    );
    assert_eq!(
        error(&ct),
        "detail.serviceEventDetails.updateManagedAccountStatus.account: missing"
    );
    let mut ct = parse(fixture!("ct_create_succeeded"));
    set(
        &mut ct,
        &["serviceEventDetails", "createManagedAccountStatus", "state"],
        json!(1),
    );
    assert_eq!(
        error(&ct),
        "detail.serviceEventDetails.createManagedAccountStatus.state: expected a string, got a number"
    );
    let mut ct = parse(fixture!("ct_create_succeeded"));
    remove(&mut ct, &["eventName"]);
    assert_eq!(error(&ct), "detail.eventName: missing");
    let mut org = parse(fixture!("org_create_succeeded"));
    set(&mut org, &["serviceEventDetails"], json!([]));
    assert_eq!(
        error(&org),
        "detail.serviceEventDetails: expected an object, got an array"
    );
}

#[test]
fn schema_versions_other_than_1_are_unsupported() {
    let mut e = oidc();
    set(&mut e, &["schemaVersion"], json!("2"));
    set(&mut e, &["newInV2"], json!(true));
    let reason = error(&e);
    assert!(
        reason.starts_with("detail.schemaVersion: unsupported schemaVersion \"2\""),
        "{reason}"
    );
    set(&mut e, &["schemaVersion"], json!(1));
    assert_eq!(
        error(&e),
        "detail.schemaVersion: expected the string \"1\", got a number"
    );
    remove(&mut e, &["schemaVersion"]);
    assert_eq!(error(&e), "detail.schemaVersion: missing (expected \"1\")");
}

#[test]
fn unknown_detail_fields_are_refused() {
    let mut e = oidc();
    set(&mut e, &["acountName"], json!("typo"));
    let reason = error(&e);
    assert!(
        reason.starts_with("detail.acountName: unknown field (allowed: schemaVersion, accountId"),
        "{reason}"
    );
    let mut e = oidc();
    set(&mut e, &["webIdentityProvider", "providerNmae"], json!("x"));
    assert!(error(&e).starts_with("detail.webIdentityProvider.providerNmae: unknown field"));
    let mut e = oidc();
    set(&mut e, &["identityCenterInstance", "Name"], json!("x"));
    assert!(error(&e).starts_with("detail.identityCenterInstance.Name: unknown field"));
    let mut e = oidc();
    set(
        &mut e,
        &["webIdentityProvider", "details", "issuer"],
        json!("x"),
    );
    assert!(error(&e)
        .starts_with("detail.webIdentityProvider.details.issuer: not a detail of OIDC providers"));
}

const CANARY: &str = "CANARY-7f3e9d1c-secret-value";

#[test]
fn secrets_in_events_are_refused_without_echo() {
    let want =
        "secrets must not travel in events; store it in Secrets Manager and name it in secretId";
    let cases: [(&[&str], Value); 6] = [
        (
            &["webIdentityProvider", "details", "client_secret"],
            json!(CANARY),
        ),
        (
            &["webIdentityProvider", "details", "private_key"],
            json!(CANARY),
        ),
        (
            &["webIdentityProvider", "details", "Client_Secret"],
            json!(CANARY),
        ),
        (
            &["webIdentityProvider", "details", "client_secret"],
            json!({"nested": CANARY}),
        ),
        (&["webIdentityProvider", "clientSecret"], json!(CANARY)),
        (&["client_secret"], json!(CANARY)),
    ];
    for (path, value) in cases {
        let mut e = oidc();
        set(&mut e, path, value);
        let reason = error(&e);
        assert!(reason.ends_with(want), "{reason}");
        assert!(
            reason.starts_with(&format!("detail.{}", path.join("."))),
            "{reason}"
        );
        assert!(!reason.contains("CANARY"), "{reason}");
    }
    // reported as a secret even when something else is wrong too
    let mut e = oidc();
    set(&mut e, &["webIdentityProvider", "portalArn"], json!("nope"));
    set(
        &mut e,
        &["webIdentityProvider", "details", "client_secret"],
        json!(CANARY),
    );
    assert!(error(&e).ends_with(want));
    // and the Debug form of the error carries nothing more
    let err = decode_body(&serde_json::to_string(&e).unwrap(), &Accept::default()).unwrap_err();
    assert!(!format!("{err:?}").contains("CANARY"));
}

#[test]
fn secret_id_is_required_exactly_when_the_type_has_secrets() {
    let mut e = oidc();
    remove(&mut e, &["webIdentityProvider", "secretId"]);
    assert_eq!(
        error(&e),
        "detail.webIdentityProvider.secretId: missing; OIDC providers read client_secret from a Secrets Manager secret named here"
    );
    let mut e = parse(fixture!("own_apple"));
    remove(&mut e, &["webIdentityProvider", "secretId"]);
    assert!(error(&e).contains("SignInWithApple providers read private_key"));
    let mut e = parse(fixture!("own_saml"));
    set(
        &mut e,
        &["webIdentityProvider", "secretId"],
        json!("onboarding/saml"),
    );
    assert_eq!(
        error(&e),
        "detail.webIdentityProvider.secretId: SAML providers take no secret; remove secretId"
    );
    let mut e = oidc();
    set(
        &mut e,
        &["webIdentityProvider", "secretId"],
        json!("bad name!"),
    );
    assert!(error(&e)
        .starts_with("detail.webIdentityProvider.secretId: expected a Secrets Manager secret"));
}

#[test]
fn bad_portal_arn_is_refused() {
    let mut e = oidc();
    set(
        &mut e,
        &["webIdentityProvider", "portalArn"],
        json!("arn:aws:workspaces-web:us-east-1:123456789012:portal/xyz"),
    );
    assert_eq!(
        error(&e),
        "detail.webIdentityProvider.portalArn: expected arn:<partition>:workspaces-web:<region>:<12-digit account>:portal/<36-character id>, got \"arn:aws:workspaces-web:us-east-1:123456789012:portal/xyz\""
    );
    set(
        &mut e,
        &["webIdentityProvider", "portalArn"],
        json!("arn:aws"),
    );
    assert_eq!(
        error(&e),
        "detail.webIdentityProvider.portalArn: expected 20-2048 characters, got 7"
    );
}

#[test]
fn provider_name_too_long_is_refused() {
    let mut e = oidc();
    set(
        &mut e,
        &["webIdentityProvider", "providerName"],
        json!("x".repeat(33)),
    );
    assert_eq!(
        error(&e),
        "detail.webIdentityProvider.providerName: expected 1-32 characters, got 33"
    );
    set(
        &mut e,
        &["webIdentityProvider", "providerName"],
        json!("_corp"),
    );
    assert!(
        error(&e).starts_with("detail.webIdentityProvider.providerName: expected 3-32 characters")
    );
}

#[test]
fn unknown_provider_type_is_refused() {
    let mut e = oidc();
    set(
        &mut e,
        &["webIdentityProvider", "providerType"],
        json!("LDAP"),
    );
    assert!(error(&e)
        .starts_with("detail.webIdentityProvider.providerType: unknown provider type \"LDAP\""));
    set(
        &mut e,
        &["webIdentityProvider", "providerType"],
        json!("oidc"),
    );
    assert!(error(&e).ends_with("did you mean \"OIDC\"?)"));
}

#[test]
fn details_are_checked_per_type() {
    let mut e = oidc();
    remove(&mut e, &["webIdentityProvider", "details", "oidc_issuer"]);
    assert_eq!(
        error(&e),
        "detail.webIdentityProvider.details.oidc_issuer: missing (required for OIDC providers)"
    );
    let mut e = oidc();
    set(
        &mut e,
        &["webIdentityProvider", "details", "client_id"],
        json!(" "),
    );
    assert_eq!(
        error(&e),
        "detail.webIdentityProvider.details.client_id: must not be empty"
    );
    let mut e = oidc();
    set(
        &mut e,
        &[
            "webIdentityProvider",
            "details",
            "attributes_request_method",
        ],
        json!("PUT"),
    );
    assert!(error(&e).contains("expected \"GET\" or \"POST\""));
    let mut e = parse(fixture!("own_saml"));
    set(
        &mut e,
        &["webIdentityProvider", "details", "IDPSignout"],
        json!(true),
    );
    assert_eq!(
        error(&e),
        "detail.webIdentityProvider.details.IDPSignout: expected a string (booleans as \"true\"/\"false\"), got a boolean"
    );
    set(
        &mut e,
        &["webIdentityProvider", "details", "IDPSignout"],
        json!("yes"),
    );
    assert!(error(&e).contains("expected \"true\" or \"false\""));
    let mut e = parse(fixture!("own_saml"));
    set(
        &mut e,
        &["webIdentityProvider", "details", "RequestSigningAlgorithm"],
        json!("rsa-sha1"),
    );
    assert!(error(&e).contains("only \"rsa-sha256\""));
    let mut e = parse(fixture!("own_saml"));
    set(
        &mut e,
        &["webIdentityProvider", "details", "MetadataFile"],
        json!("<xml/>"),
    );
    assert!(error(&e).ends_with("exactly one of MetadataFile or MetadataURL, got both"));
    let mut e = parse(fixture!("own_saml"));
    remove(&mut e, &["webIdentityProvider", "details", "MetadataURL"]);
    assert!(error(&e).ends_with("got neither"));
    // Facebook: api_version optional, Google: no api_version
    let mut e = oidc();
    set(
        &mut e,
        &["webIdentityProvider", "providerType"],
        json!("Facebook"),
    );
    set(
        &mut e,
        &["webIdentityProvider", "details"],
        json!({"client_id": "1", "authorize_scopes": "email", "api_version": "v17.0"}),
    );
    assert!(matches!(
        decode(&e, &Accept::default()),
        Ok(Decoded::Request(_))
    ));
    set(
        &mut e,
        &["webIdentityProvider", "providerType"],
        json!("Google"),
    );
    assert!(error(&e).starts_with(
        "detail.webIdentityProvider.details.api_version: not a detail of Google providers"
    ));
}

#[test]
fn wrong_types_everywhere_are_named() {
    let cases: [(&[&str], Value, &str); 12] = [
        (&["accountName"], json!(5), "detail.accountName: expected a string, got a number"),
        (&["accountName"], json!(""), "detail.accountName: must not be empty"),
        (&["accountName"], json!("x".repeat(51)), "detail.accountName: expected 1-50 characters, got 51"),
        (&["identityCenterInstance"], json!("x"), "detail.identityCenterInstance: expected an object, got a string"),
        (&["identityCenterInstance", "name"], json!(["x"]), "detail.identityCenterInstance.name: expected a string, got an array"),
        (&["identityCenterInstance", "tags"], json!([]), "detail.identityCenterInstance.tags: expected an object of string values, got an array"),
        (&["identityCenterInstance", "tags", "CostCenter"], json!(1234), "detail.identityCenterInstance.tags.CostCenter: expected a string, got a number"),
        (&["webIdentityProvider"], json!(true), "detail.webIdentityProvider: expected an object, got a boolean"),
        (&["webIdentityProvider", "details"], json!("x"), "detail.webIdentityProvider.details: expected an object, got a string"),
        (&["webIdentityProvider", "details", "client_id"], json!(1), "detail.webIdentityProvider.details.client_id: expected a string (booleans as \"true\"/\"false\"), got a number"),
        (&["webIdentityProvider", "providerType"], json!(null), "detail.webIdentityProvider.providerType: expected a value, got null"),
        (&["webIdentityProvider", "tags"], json!({"aws:team": "x"}), "detail.webIdentityProvider.tags.aws:team: tag keys starting with \"aws:\" are reserved by AWS"),
    ];
    for (path, value, want) in cases {
        let mut e = oidc();
        set(&mut e, path, value);
        assert_eq!(error(&e), want, "{path:?}");
    }
    let mut e = oidc();
    set(
        &mut e,
        &["identityCenterInstance", "name"],
        json!("payments prod"),
    );
    assert!(error(&e).starts_with(
        "detail.identityCenterInstance.name: only letters, digits and _+=,.@- are allowed"
    ));
}

#[test]
fn non_json_sqs_bodies_are_refused() {
    for body in ["not json", "{\"id\": ", "", "   "] {
        let err = decode_body(body, &Accept::default()).unwrap_err();
        assert!(err.reason.starts_with("body: "), "{err}");
    }
    let err = decode_body("[]", &Accept::default()).unwrap_err();
    assert_eq!(err.reason, "event: expected an object, got an array");
}

#[test]
fn echoes_are_short() {
    let mut e = oidc();
    set(
        &mut e,
        &["accountId"],
        json!(format!("x{}", "9".repeat(30))),
    );
    let reason = error(&e);
    assert!(reason.contains("\"x999"), "{reason}");
    let mut e = oidc();
    e["source"] = json!("s".repeat(5000));
    let reason = error(&e);
    assert!(
        reason.contains("(5000 bytes)") && reason.len() < 300,
        "{reason}"
    );
}

/// The sample events shipped in `events/` (used by the demo and the docs) decode as their
/// names say: `invalid` ones are refused, all others are requests or ignored events.
#[test]
fn repository_sample_events_decode() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the repository's events/ directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let accept = Accept::default();
    for path in files {
        let bytes = std::fs::read(&path).expect("readable");
        let outcomes: Vec<Result<Decoded, DecodeError>> = match invocation_from_slice(&bytes) {
            Err(e) => panic!("{}: payload refused: {e}", path.display()),
            Ok(Invocation::EventBridge(e)) => vec![decode(&e, &accept)],
            Ok(Invocation::Sqs(records)) => records
                .iter()
                .map(|r| decode_body(&r.body, &accept))
                .collect(),
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let errors = outcomes.iter().filter(|o| o.is_err()).count();
        if name.contains("invalid") {
            assert!(errors > 0, "{name}: expected a refusal, got {outcomes:?}");
        } else {
            assert_eq!(errors, 0, "{name}: {outcomes:?}");
        }
    }
}
