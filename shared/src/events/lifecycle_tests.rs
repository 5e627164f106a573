//! Control Tower's 13 lifecycle events, decoded with `aws_lambda_events`' typed structs: each
//! fixture decodes to its decided outcome, the typed reader and the by-path reader agree, and
//! nothing a lifecycle event holds turns an ignored event into an error.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::aws::{self, Lifecycle, Status};
use super::json::Fields;
use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("fixtures/", $name, ".json"))
    };
}

/// One fixture per lifecycle event, in [`Lifecycle::ALL`] order (real shapes: the crate's
/// fixtures in an EventBridge envelope).
const LIFECYCLE_FIXTURES: [&str; 13] = [
    fixture!("ct_create_succeeded"),
    fixture!("ct_update_succeeded"),
    fixture!("ct_enable_guardrail"),
    fixture!("ct_disable_guardrail"),
    fixture!("ct_setup_landing_zone"),
    fixture!("ct_update_landing_zone"),
    fixture!("ct_register_organizational_unit"),
    fixture!("ct_deregister_organizational_unit"),
    fixture!("ct_precheck_organizational_unit"),
    fixture!("ct_enable_baseline"),
    fixture!("ct_reset_enabled_baseline"),
    fixture!("ct_update_enabled_baseline"),
    fixture!("ct_disable_baseline"),
];

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

fn decoded(event: &Value) -> Result<Decoded, DecodeError> {
    decode(event, &Accept::default())
}

fn ignored(event: &Value) -> String {
    match decoded(event) {
        Ok(Decoded::Ignored { reason }) => reason,
        other => panic!("expected ignored, got {other:?}"),
    }
}

fn details_mut(event: &mut Value) -> &mut Value {
    &mut event["detail"]["serviceEventDetails"]
}

/// The decision of the reader that predates the typed structs.
fn by_path(event: &Value, which: Lifecycle) -> Result<Decoded, DecodeError> {
    let detail = Fields::of(&event["detail"], "detail").expect("detail is an object");
    let envelope = Envelope {
        id: event["id"].as_str().expect("id"),
        detail_type: CLOUDTRAIL_SERVICE_EVENT,
        detail,
        replay_name: None,
        time: event["time"].as_str(),
    };
    aws::managed_account_by_path(&envelope, which)
}

#[test]
fn the_thirteen_lifecycle_events_are_the_crates() {
    let names: Vec<&str> = Lifecycle::ALL.iter().map(|e| e.name()).collect();
    assert_eq!(
        names,
        [
            "CreateManagedAccount",
            "UpdateManagedAccount",
            "EnableGuardrail",
            "DisableGuardrail",
            "SetupLandingZone",
            "UpdateLandingZone",
            "RegisterOrganizationalUnit",
            "DeregisterOrganizationalUnit",
            "PrecheckOrganizationalUnit",
            "EnableBaseline",
            "ResetEnabledBaseline",
            "UpdateEnabledBaseline",
            "DisableBaseline",
        ]
    );
    for (event, text) in Lifecycle::ALL.into_iter().zip(LIFECYCLE_FIXTURES) {
        let e = parse(text);
        assert_eq!(e["detail"]["eventName"], json!(event.name()));
        let details = e["detail"]["serviceEventDetails"].as_object().unwrap();
        assert_eq!(
            details.keys().collect::<Vec<_>>(),
            [&event.status_key()],
            "{}",
            event.name()
        );
        // every fixture has the shape the crate's typed struct documents
        let typed = aws::typed_status(event, &e["detail"]["serviceEventDetails"]);
        assert!(typed.is_ok(), "{}: {typed:?}", event.name());
    }
}

#[test]
fn only_a_succeeded_managed_account_event_onboards() {
    for (event, text) in Lifecycle::ALL.into_iter().zip(LIFECYCLE_FIXTURES) {
        let e = parse(text);
        match (event.not_onboarding(), decoded(&e)) {
            (None, Ok(Decoded::Request(r))) => {
                assert_eq!(
                    r.origin,
                    Origin::ControlTower {
                        event_name: event.name().into()
                    }
                );
                assert_eq!(r.account_id, "222233334444");
                assert_eq!(r.account_name.as_deref(), Some("payments-prod"));
            }
            (Some(why), Ok(Decoded::Ignored { reason })) => {
                assert!(
                    reason.starts_with(&format!("Control Tower {} (", event.name())),
                    "{reason}"
                );
                assert!(
                    reason.ends_with(&format!(") is not an onboarding event: {why}")),
                    "{reason}"
                );
                assert!(reason.len() < 600, "{reason}");
            }
            (_, other) => panic!("{}: {other:?}", event.name()),
        }
    }
}

#[test]
fn ignore_reasons_say_what_the_event_did() {
    let cases = [
        (
            fixture!("ct_enable_guardrail"),
            "(\"SUCCEEDED\": \"AWS-GR_ENCRYPTED_VOLUMES\" on \"Sandbox\" (\"ou-abcd-12345678\"))",
        ),
        (
            fixture!("ct_setup_landing_zone"),
            "(\"SUCCEEDED\": accounts \"Audit\" (\"555566667777\"), \"Log archive\" (\"666677778888\"))",
        ),
        (
            fixture!("ct_register_organizational_unit"),
            "(\"SUCCEEDED\": organizational unit \"Production\" (\"ou-abcd-33333333\"))",
        ),
        (
            fixture!("ct_precheck_organizational_unit"),
            "(\"FAILED\": organizational unit \"Production\" (\"ou-abcd-33333333\"), 1 account(s))",
        ),
        (
            fixture!("ct_disable_baseline"),
            "(\"SUCCEEDED\": baseline \"arn:aws:controltower:us-east-1::baseline/ABCDE12345678\" on \"arn:aws:organizations::111111111111:ou/o-a1b2c3d4e5/ou-abcd-33333333\")",
        ),
    ];
    for (text, want) in cases {
        let reason = ignored(&parse(text));
        assert!(reason.contains(want), "{reason}\n  wanted {want}");
    }
    let reason = ignored(&parse(fixture!("ct_deregister_organizational_unit")));
    assert!(reason.contains("nothing is offboarded"), "{reason}");
    let reason = ignored(&parse(fixture!("ct_disable_baseline")));
    assert!(reason.contains("nothing is offboarded"), "{reason}");
}

#[test]
fn ignore_reasons_stay_short_whatever_the_event_lists() {
    let mut e = parse(fixture!("ct_enable_guardrail"));
    let status = &mut details_mut(&mut e)["enableGuardrailStatus"];
    status["guardrails"] = json!((0..500)
        .map(|i| json!({"guardrailId": format!("GR-{i}-{}", "x".repeat(5000)), "guardrailBehavior": "DETECTIVE"}))
        .collect::<Vec<_>>());
    status["state"] = json!("S".repeat(100_000));
    let reason = ignored(&e);
    assert!(reason.contains("and 497 more"), "{reason}");
    assert!(reason.len() < 1000, "{} bytes", reason.len());
}

#[test]
fn malformed_non_onboarding_events_are_still_ignored_and_say_so() {
    let mut e = parse(fixture!("ct_enable_guardrail"));
    e["detail"]
        .as_object_mut()
        .unwrap()
        .remove("serviceEventDetails");
    let reason = ignored(&e);
    assert!(
        reason.starts_with("Control Tower EnableGuardrail is not an onboarding event: ")
            && reason.ends_with(
                "(its details are not the documented shape: it has no serviceEventDetails)"
            ),
        "{reason}"
    );
    let mut e = parse(fixture!("ct_enable_baseline"));
    details_mut(&mut e)["enableBaselineStatus"]["enabledBaselineDetails"]["statusSummary"] =
        json!(5);
    let reason = ignored(&e);
    assert!(
        reason.contains("its details are not the documented shape: \"invalid type"),
        "{reason}"
    );
    // an event name whose details are another event's
    let mut e = parse(fixture!("ct_enable_guardrail"));
    e["detail"]["eventName"] = json!("EnableBaseline");
    let reason = ignored(&e);
    assert!(
        reason.starts_with("Control Tower EnableBaseline is not an onboarding event")
            && reason.ends_with("it holds no enableBaselineStatus)"),
        "{reason}"
    );
    // names no Control Tower lifecycle event at all
    let mut e = parse(fixture!("ct_enable_guardrail"));
    e["detail"]["eventName"] = json!("CreateLandingZone");
    assert!(ignored(&e).contains("none of Control Tower's 13 lifecycle events"));
}

#[test]
fn partial_managed_account_statuses_are_read_by_path() {
    // FAILED and IN_PROGRESS statuses may carry no accountId or completedTimestamp: the
    // crate's struct refuses them, the decision is still today's.
    let e = parse(fixture!("ct_create_failed"));
    assert!(aws::typed_status(
        Lifecycle::CreateManagedAccount,
        &e["detail"]["serviceEventDetails"]
    )
    .is_err());
    let reason = ignored(&e);
    assert_eq!(
        reason,
        "Control Tower CreateManagedAccount is \"FAILED\" (only SUCCEEDED onboards): \"AWS Control Tower could not create an enrolled account: the email address is already in use.\""
    );
    // a SUCCEEDED status without the fields the decision does not read still onboards
    let mut e = parse(fixture!("ct_create_succeeded"));
    let status = details_mut(&mut e)["createManagedAccountStatus"]
        .as_object_mut()
        .unwrap();
    for key in [
        "message",
        "organizationalUnit",
        "requestedTimestamp",
        "completedTimestamp",
    ] {
        status.remove(key);
    }
    assert!(aws::typed_status(
        Lifecycle::CreateManagedAccount,
        &e["detail"]["serviceEventDetails"]
    )
    .is_err());
    assert!(matches!(decoded(&e), Ok(Decoded::Request(r)) if r.account_id == "222233334444"));
    // and the typed reader is the one that reads the documented shape
    let e = parse(fixture!("ct_update_succeeded"));
    assert!(matches!(
        aws::typed_status(
            Lifecycle::UpdateManagedAccount,
            &e["detail"]["serviceEventDetails"]
        ),
        Ok(Status::Account(_))
    ));
}

#[test]
fn typed_reader_keeps_the_limits_and_their_messages() {
    let mut e = parse(fixture!("ct_update_succeeded"));
    details_mut(&mut e)["updateManagedAccountStatus"]["account"]["accountName"] =
        json!("x".repeat(51));
    assert_eq!(
        decoded(&e).unwrap_err().reason,
        "detail.serviceEventDetails.updateManagedAccountStatus.account.accountName: expected 1-50 characters, got 51"
    );
    details_mut(&mut e)["updateManagedAccountStatus"]["account"]["accountName"] =
        json!("bad\nname");
    assert!(decoded(&e).unwrap_err().reason.starts_with(
        "detail.serviceEventDetails.updateManagedAccountStatus.account.accountName: control characters are not allowed"
    ));
    details_mut(&mut e)["updateManagedAccountStatus"]["account"]["accountName"] = json!("ok");
    details_mut(&mut e)["updateManagedAccountStatus"]["account"]["accountId"] =
        json!("2222333344445");
    assert_eq!(
        decoded(&e).unwrap_err().reason,
        "detail.serviceEventDetails.updateManagedAccountStatus.account.accountId: expected 12 digits, got \"2222333344445\""
    );
}

#[test]
fn body_size_limit_applies_before_any_decoding() {
    let mut e = parse(fixture!("ct_setup_landing_zone"));
    details_mut(&mut e)["setupLandingZoneStatus"]["message"] = json!("m".repeat(MAX_EVENT_BYTES));
    let err = decode_body(&e.to_string(), &Accept::default()).unwrap_err();
    assert!(
        err.reason.starts_with("body: ") && err.reason.contains("exceeds the 262144-byte limit")
    );
}

#[test]
fn events_readme_decides_every_lifecycle_and_organizations_event() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/README.md");
    let readme = std::fs::read_to_string(path).expect("events/README.md");
    let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `")).collect();
    let names = Lifecycle::ALL
        .iter()
        .map(|e| e.name())
        .chain(["CreateAccountResult"]);
    for name in names {
        let row = rows
            .iter()
            .find(|r| r.starts_with(&format!("| `{name}`")))
            .unwrap_or_else(|| panic!("events/README.md has no row for {name}"));
        assert!(
            ["onboards", "ignored", "offboards"]
                .iter()
                .any(|w| row.contains(&format!("| {w}"))),
            "{row}"
        );
    }
}

// ------------------------------------------------------------------ properties

/// A status field of a managed-account fixture, and what to do to it.
fn arb_field() -> impl Strategy<Value = Vec<&'static str>> {
    prop::sample::select(vec![
        vec!["state"],
        vec!["message"],
        vec!["account"],
        vec!["account", "accountId"],
        vec!["account", "accountName"],
        vec!["organizationalUnit"],
        vec!["organizationalUnit", "organizationalUnitId"],
        vec!["requestedTimestamp"],
        vec!["completedTimestamp"],
    ])
}

fn arb_value() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        Just(Some(json!("SUCCEEDED"))),
        Just(Some(json!("FAILED"))),
        Just(Some(json!("123456789012"))),
        Just(Some(json!(""))),
        Just(Some(json!(123456789012u64))),
        Just(Some(json!({}))),
        Just(Some(json!([]))),
        Just(Some(json!("9".repeat(300)))),
        "\\PC{0,60}".prop_map(|s| Some(json!(s))),
    ]
}

fn set_field(event: &mut Value, key: &str, path: &[&str], value: Option<Value>) {
    let mut at = &mut event["detail"]["serviceEventDetails"][key];
    for k in &path[..path.len() - 1] {
        at = &mut at[*k];
    }
    if let Value::Object(o) = at {
        match value {
            None => {
                o.remove(path[path.len() - 1]);
            }
            Some(v) => {
                o.insert(path[path.len() - 1].to_owned(), v);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// The typed reader changes no decision, limit or message: on any managed-account
    /// status, the decoder answers what the by-path reader answers.
    #[test]
    fn managed_account_decisions_are_the_by_path_readers(
        update in any::<bool>(),
        changes in prop::collection::vec((arb_field(), arb_value()), 0..4),
        extra_status in any::<bool>(),
    ) {
        let (text, which) = if update {
            (fixture!("ct_update_succeeded"), Lifecycle::UpdateManagedAccount)
        } else {
            (fixture!("ct_create_succeeded"), Lifecycle::CreateManagedAccount)
        };
        let mut e = parse(text);
        let key = which.status_key();
        for (path, value) in changes {
            set_field(&mut e, &key, &path, value);
        }
        if extra_status {
            e["detail"]["serviceEventDetails"]["enableGuardrailStatus"] = json!({});
        }
        prop_assert_eq!(decoded(&e), by_path(&e, which));
    }

    /// Whatever a non-onboarding lifecycle event holds, it is ignored (never an error) with
    /// a bounded reason that names it.
    #[test]
    fn non_onboarding_lifecycle_events_are_always_ignored(
        which in 2usize..13,
        path in prop::sample::select(vec!["state", "message", "organizationalUnits", "accounts", "organizationalUnit", "enabledBaselineDetails", "guardrails"]),
        value in arb_value(),
    ) {
        let event = Lifecycle::ALL[which];
        let mut e = parse(LIFECYCLE_FIXTURES[which]);
        set_field(&mut e, &event.status_key(), &[path], value);
        match decoded(&e) {
            Ok(Decoded::Ignored { reason }) => {
                let prefix = format!("Control Tower {} ", event.name());
                prop_assert!(reason.starts_with(&prefix), "{}", reason);
                prop_assert!(reason.len() < 1200, "{} bytes", reason.len());
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }
}
