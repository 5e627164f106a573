//! Every file of `events/`, as `sam local invoke <Function> -e events/<file>.json` would
//! deliver it, but offline: the real function binaries (debug builds of this checkout) served
//! through the Lambda Runtime API by `cargo lambda watch` (one per function, each signing as
//! its role of template.yaml), each file delivered with `cargo lambda invoke --data-file`,
//! moto and the identity emulator behind them, the emulator holding every call to the
//! caller's shipped IAM policy. Checks the
//! replies events/README.md documents (`batchItemFailures` included), the resources the
//! emulator holds, the ledger items and the emitted events; then delivers every file again
//! and checks that the second round creates nothing, and that IAM denied no call. The
//! departure samples come last (by name): 333333333333 closed, 444444444444 removed,
//! 555555555555 (never onboarded) left; their steps end RETIRED, each announced once, and in
//! round 2 the older requests for them are acknowledged as retired.

use std::collections::BTreeMap;

use integration_tests::local::deliver::Delivery;
use integration_tests::local::expected::{expected, ledger_status, Expect, LEFT};
use integration_tests::local::progress::Progress;
use integration_tests::local::report::{ledger_rows, LedgerRow, Resources};
use integration_tests::local::session::{Options, Session, START_STEPS};
use integration_tests::local::{
    event_files, file_name, repo_root, role, verify, EVENT_ORDER, FUNCTIONS,
};
use onboarding::ledger::{client_token, StepKey};
use serde_json::Value;

const PORTAL_222: &str =
    "arn:aws:workspaces-web:us-east-1:222222222222:portal/0d5e1c8a-3b7f-4e2a-9c6d-1f2e3a4b5c6d";
const PORTAL_333: &str =
    "arn:aws:workspaces-web:us-east-1:333333333333:portal/7a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d";

fn fail(message: String) -> ! {
    panic!("{message}")
}

/// The reply `function` gave to `file` in `deliveries`.
fn reply<'a>(deliveries: &'a [Delivery], file: &str, function: &str) -> &'a Value {
    let delivery = deliveries
        .iter()
        .find(|d| d.file == file && d.function == function)
        .unwrap_or_else(|| fail(format!("{file} was not delivered to {function}")));
    match delivery.first() {
        integration_tests::local::watch::Reply::Value(v) => v,
        other => fail(format!("{file} -> {function}: {other:?}")),
    }
}

/// `(account, list)` for a kind of resource in the emulator's state.
fn resources(state: &Value, kind: &str) -> BTreeMap<String, Vec<Value>> {
    let mut out = BTreeMap::new();
    if let Some(accounts) = state["accounts"].as_object() {
        for (account, holdings) in accounts {
            let list: Vec<Value> = holdings[kind]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r["organization"] != Value::Bool(true))
                .collect();
            if !list.is_empty() {
                out.insert(account.clone(), list);
            }
        }
    }
    out
}

fn emitted_by_type(events: &[Value]) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for e in events {
        out.entry(e["detail-type"].as_str().unwrap_or("?").to_string())
            .or_default()
            .push(e["detail"].clone());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_event_through_the_real_function_binaries_then_again_creating_nothing() {
    let root = repo_root();
    let work_dir =
        std::env::temp_dir().join(format!("identity-onboarding-events-{}", std::process::id()));
    let mut progress = Progress::new(START_STEPS);
    let mut session = Session::start(&mut progress, Options::new("events", work_dir.clone()))
        .await
        .unwrap_or_else(|e| fail(e));

    // Every file of events/ is delivered, and every one has a documented reply.
    let files = event_files(&root).unwrap_or_else(|e| fail(e));
    let names: Vec<String> = files.iter().map(|f| file_name(f)).collect();
    for name in EVENT_ORDER {
        assert!(names.iter().any(|n| n == name), "events/{name} is missing");
    }
    for name in &names {
        for function in FUNCTIONS {
            assert_ne!(
                expected(name, function, 1),
                Expect::Undocumented,
                "events/{name} has no documented reply in events/README.md"
            );
        }
    }

    // Round 1: a fresh ledger, files in the README's order.
    let first = session
        .deliver_all(&files, 1, |_| {})
        .await
        .unwrap_or_else(|e| fail(e));
    assert_eq!(first.len(), files.len() * FUNCTIONS.len());
    let problems = verify::replies(&first, 1);
    assert!(problems.is_empty(), "round 1:\n{}", problems.join("\n"));

    // Resources: one instance per member account (named as requested), one identity source
    // on the organization instance, one provider per portal with the secret filled in.
    let state = session.stack.emulator.state();
    let instances = resources(&state, "instances");
    assert_eq!(
        instances.keys().collect::<Vec<_>>(),
        ["222222222222", "333333333333", "444444444444"],
        "{state:#}"
    );
    for (account, name) in [
        ("222222222222", Value::from("payments-prod")),
        ("333333333333", Value::from("analytics-dev")),
        ("444444444444", Value::Null),
    ] {
        let list = &instances[account];
        assert_eq!(list.len(), 1, "{account}: {list:?}");
        assert_eq!(list[0]["status"], "ACTIVE", "{account}: {list:?}");
        assert_eq!(list[0]["name"], name, "{account}: {list:?}");
    }
    let sources = resources(&state, "identity_sources");
    assert_eq!(sources.len(), 1, "{sources:?}");
    let source = &sources["111111111111"];
    assert_eq!(source.len(), 1);
    assert_eq!(source[0]["status"], "ACTIVE");
    assert_eq!(
        source[0]["instance_arn"],
        session.stack.org_instance_arn.as_str()
    );
    let providers = resources(&state, "identity_providers");
    assert_eq!(providers.len(), 2, "{providers:?}");
    let oidc = &providers["222222222222"];
    assert_eq!(oidc.len(), 1);
    assert_eq!(oidc[0]["identity_provider_name"], "corp-oidc");
    assert_eq!(oidc[0]["identity_provider_type"], "OIDC");
    assert_eq!(oidc[0]["portal_arn"], PORTAL_222);
    let keys = oidc[0]["detail_keys"].to_string();
    assert!(
        keys.contains("client_secret") && keys.contains("client_id"),
        "{keys}"
    );
    let saml = &providers["333333333333"];
    assert_eq!(saml.len(), 1);
    assert_eq!(saml[0]["identity_provider_name"], "corp-saml");
    assert_eq!(saml[0]["identity_provider_type"], "SAML");
    assert_eq!(saml[0]["portal_arn"], PORTAL_333);
    assert!(saml[0]["detail_keys"].to_string().contains("MetadataFile"));

    // The direct replies name those resources.
    let arn_of = |list: &Vec<Value>, field: &str| list[0][field].as_str().unwrap_or("").to_string();
    let created = "onboarding-requested.json";
    assert_eq!(
        reply(&first, created, FUNCTIONS[0])["resourceArn"],
        arn_of(&instances["222222222222"], "instance_arn").as_str()
    );
    assert_eq!(
        reply(&first, created, FUNCTIONS[1])["resourceArn"],
        arn_of(source, "identity_source_arn").as_str()
    );
    assert_eq!(
        reply(&first, created, FUNCTIONS[2])["resourceArn"],
        arn_of(oidc, "identity_provider_arn").as_str()
    );
    assert_eq!(
        reply(&first, "replayed-onboarding-requested.json", FUNCTIONS[0])["resourceArn"],
        arn_of(&instances["222222222222"], "instance_arn").as_str()
    );

    // Exactly one create call per resource.
    let after_first = session.stack.emulator.counters();
    for (operation, n) in [
        ("CreateInstance", 3),
        ("CreateIdentitySource", 1),
        ("CreateIdentityProvider", 2),
    ] {
        assert_eq!(
            after_first.calls(operation),
            n,
            "{operation}: {after_first:?}"
        );
        assert_eq!(
            after_first.created(operation),
            n,
            "{operation}: {after_first:?}"
        );
    }

    // Ledger: one item per step at its scope, first attempt, the deterministic token, the
    // emulator's ARN; READY, or RETIRED for the closed and removed accounts (closure deletes
    // nothing: the resource and its ARN stay). The account that left without ever being
    // onboarded has a retired placeholder for its instance step: no ARN, no attempt.
    let items = session
        .stack
        .ledger_items()
        .await
        .unwrap_or_else(|e| fail(e));
    let rows = ledger_rows(&items).unwrap_or_else(|e| fail(e));
    let org_scope = format!("org#{}", session.stack.org_instance_arn);
    let expected_items: Vec<(String, String, String)> = vec![
        (
            "account#222222222222".into(),
            "identity-center-instance".into(),
            arn_of(&instances["222222222222"], "instance_arn"),
        ),
        (
            "account#222222222222".into(),
            format!("web-identity-provider#{PORTAL_222}#corp-oidc"),
            arn_of(oidc, "identity_provider_arn"),
        ),
        (
            "account#333333333333".into(),
            "identity-center-instance".into(),
            arn_of(&instances["333333333333"], "instance_arn"),
        ),
        (
            "account#333333333333".into(),
            format!("web-identity-provider#{PORTAL_333}#corp-saml"),
            arn_of(saml, "identity_provider_arn"),
        ),
        (
            "account#444444444444".into(),
            "identity-center-instance".into(),
            arn_of(&instances["444444444444"], "instance_arn"),
        ),
        (
            org_scope.clone(),
            "approval-identity-source".into(),
            arn_of(source, "identity_source_arn"),
        ),
    ];
    let mut expected_items = expected_items;
    expected_items.push((
        format!("account#{LEFT}"),
        "identity-center-instance".into(),
        "-".into(),
    ));
    assert_eq!(rows.len(), expected_items.len(), "{rows:#?}");
    for (scope, sort_key, arn) in &expected_items {
        let row: &LedgerRow = rows
            .iter()
            .find(|r| &r.scope == scope && &r.sort_key == sort_key)
            .unwrap_or_else(|| fail(format!("no ledger item {scope} / {sort_key}: {rows:#?}")));
        assert_eq!(row.status, ledger_status(&row.account), "{row:?}");
        assert_eq!(&row.arn, arn, "{row:?}");
        assert_eq!(row.attempts, u32::from(arn != "-"), "{row:?}");
        let key = StepKey {
            scope: scope.clone(),
            step: sort_key.clone(),
        };
        assert_eq!(
            row.client_token,
            client_token(&key, 0, row.token_salt.as_deref()),
            "{row:?}"
        );
    }

    let problems = verify::ledger_settled(&rows);
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Emitted: one Ready event per resource (with the ledger's token), one rejection per
    // function for the invalid event, one Account Offboarded per retired step.
    let emitted = session.stack.emitted().await.unwrap_or_else(|e| fail(e));
    let by_type = emitted_by_type(&emitted);
    let ready_accounts = |detail_type: &str| -> Vec<String> {
        let mut v: Vec<String> = by_type
            .get(detail_type)
            .map(|list| {
                list.iter()
                    .map(|d| {
                        d["accountId"]
                            .as_str()
                            .unwrap_or("organization")
                            .to_string()
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    assert_eq!(
        ready_accounts("Identity Center Instance Ready"),
        ["222222222222", "333333333333", "444444444444"]
    );
    assert_eq!(
        ready_accounts("Approval Identity Source Ready"),
        ["organization"]
    );
    assert_eq!(
        ready_accounts("Web Identity Provider Ready"),
        ["222222222222", "333333333333"]
    );
    for detail_type in [
        "Identity Center Instance Ready",
        "Approval Identity Source Ready",
        "Web Identity Provider Ready",
    ] {
        for detail in &by_type[detail_type] {
            let row = rows
                .iter()
                .find(|r| detail["resourceArn"] == r.arn.as_str())
                .unwrap_or_else(|| fail(format!("{detail_type} names no ledger item: {detail}")));
            assert_eq!(detail["clientToken"], row.client_token.as_str(), "{detail}");
        }
    }
    let failed = &by_type["Onboarding Step Failed"];
    assert_eq!(failed.len(), FUNCTIONS.len(), "{failed:?}");
    for detail in failed {
        assert_eq!(detail["step"], "event", "{detail}");
        assert_eq!(detail["reason"]["code"], "InvalidEvent", "{detail}");
        assert_eq!(
            detail["requestEventId"],
            "d7c6b5a4-9382-4716-8f5e-4d3c2b1a0f9e"
        );
    }
    assert_eq!(
        ready_accounts("Account Offboarded"),
        ["333333333333", "333333333333", "444444444444", LEFT]
    );
    let problems = verify::offboarded_once(&rows, &emitted);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for detail in &by_type["Account Offboarded"] {
        assert_eq!(detail["schemaVersion"], "1", "{detail}");
        assert!(detail["retired"]["reason"].is_string(), "{detail}");
        assert!(detail["retired"]["event"].is_string(), "{detail}");
    }
    assert_eq!(by_type.len(), 5, "{:?}", by_type.keys());

    // Round 2: every file again. Nothing is created, the ledger stays as it is, nothing is
    // announced again except the rejections (not the retirements either).
    let second = session
        .deliver_all(&files, 2, |_| {})
        .await
        .unwrap_or_else(|e| fail(e));
    let problems = verify::replies(&second, 2);
    assert!(problems.is_empty(), "round 2:\n{}", problems.join("\n"));
    let now = session.stack.emulator.counters();
    let after_state = session.stack.emulator.state();
    for kind in ["instances", "identity_sources", "identity_providers"] {
        assert_eq!(
            resources(&after_state, kind),
            resources(&state, kind),
            "{kind}"
        );
    }
    let rows_after = ledger_rows(
        &session
            .stack
            .ledger_items()
            .await
            .unwrap_or_else(|e| fail(e)),
    )
    .unwrap_or_else(|e| fail(e));
    assert_eq!(rows_after, rows);
    let resources_held = Resources::from_state(&after_state);
    let problems = verify::idempotent(&rows_after, &after_first, &now, &resources_held);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let emitted_again = session.stack.emitted().await.unwrap_or_else(|e| fail(e));
    let again = emitted_by_type(&emitted_again);
    assert_eq!(again.keys().collect::<Vec<_>>(), ["Onboarding Step Failed"]);
    assert_eq!(again["Onboarding Step Failed"].len(), FUNCTIONS.len());

    // Every function signed as its role of template.yaml, and its role's shipped policy
    // allowed every call it made (moto's services included, through the emulator).
    let observed = session.stack.emulator.observed();
    let roles: Vec<&str> = FUNCTIONS.iter().filter_map(|f| role(f)).collect();
    assert_eq!(roles.len(), FUNCTIONS.len());
    let problems = verify::iam(&observed, &roles);
    assert!(
        problems.is_empty(),
        "{}\n{observed:#?}",
        problems.join("\n")
    );
    assert!(session.stack.denials().is_empty(), "{observed:#?}");
    for role in &roles {
        for action in ["dynamodb:UpdateItem", "events:PutEvents"] {
            assert!(
                observed.contains(&(role.to_string(), action.to_string(), true)),
                "{role} {action}: {observed:#?}"
            );
        }
    }

    // The OIDC client secret reached the API (above) and nothing else.
    let log = session.function_log();
    // The log is the functions' own (JSON lines through cargo lambda watch): one "created"
    // per resource, across both rounds.
    assert_eq!(log.matches("\"outcome\":\"created\"").count(), 6, "{log}");
    let replies: String = first
        .iter()
        .chain(&second)
        .flat_map(|d| d.attempts.iter().map(|a| format!("{:?}\n", a.reply)))
        .collect();
    let problems = verify::secret_absent(
        &session.stack.secret_value,
        &[
            ("the function logs", &log),
            ("the replies", &replies),
            ("the ledger", &format!("{items:?}")),
            (
                "the emitted events",
                &format!("{emitted:?}{emitted_again:?}"),
            ),
        ],
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    session.stop();
    let _ = std::fs::remove_dir_all(work_dir);
}
