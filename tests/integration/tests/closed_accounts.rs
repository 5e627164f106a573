//! The reconciler's audit and accounts it can no longer reach, against moto (Organizations)
//! and the identity emulator: an onboarded account closed behind the project's back (closed in
//! moto's organization, its roles refusing AssumeRole in the emulator) is retired by the audit,
//! announced once, with no drift, no failure and nothing counted not audited; an ACTIVE account
//! whose member role refuses is counted not audited with a line naming the account and the
//! error, its steps stay READY, and nothing is announced.
//!
//! moto keeps one organization per account; the reconciler's calls reach moto through the
//! emulator's forwarder with an access key moto does not know, which moto answers as its
//! default account. So the organization here is that account's, created once (the tests of
//! this file share it and create accounts of their own in it).

use std::time::Duration;

use aws_sdk_organizations::error::ProvideErrorMetadata;
use aws_sdk_organizations::types::OrganizationFeatureSet;
use identity_emulator::{AccountConfig, Config as EmulatorConfig};
use integration_tests::deliveries::{of_type, oidc_provider, onboarding_requested};
use integration_tests::moto::moto;
use integration_tests::stack::{Stack, REGION};
use onboarding::ledger::{Applied, Claim, ClaimRequest, Fields, Origin, Status, StepKey};
use onboarding::revision::Revision;
use serde_json::json;

const INSTANCE: &str = "identity-center-instance";
const OFFBOARDED: &str = "Account Offboarded";

/// Organizations in moto as its default account (the organization's management account).
async fn organizations() -> aws_sdk_organizations::Client {
    let config = aws_sdk_organizations::Config::builder()
        .behavior_version(aws_sdk_organizations::config::BehaviorVersion::latest())
        .region(aws_sdk_organizations::config::Region::new(REGION))
        .endpoint_url(&moto().await.url)
        .credentials_provider(aws_sdk_organizations::config::Credentials::new(
            "AKIDORGANIZATION",
            "local-secret",
            None,
            None,
            "test",
        ))
        .build();
    let client = aws_sdk_organizations::Client::from_conf(config);
    match client
        .create_organization()
        .feature_set(OrganizationFeatureSet::All)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) if e.code() == Some("AlreadyInOrganizationException") => {}
        Err(e) => panic!("create the organization in moto: {e:?}"),
    }
    client
}

/// A new account of the organization (ACTIVE).
async fn new_account(org: &aws_sdk_organizations::Client, name: &str) -> String {
    org.create_account()
        .account_name(name)
        .email(format!("{name}-{}@example.com", std::process::id()))
        .send()
        .await
        .expect("create account")
        .create_account_status()
        .and_then(|s| s.account_id())
        .expect("account id")
        .to_owned()
}

async fn state_in_moto(
    org: &aws_sdk_organizations::Client,
    account: &str,
) -> (Option<String>, Option<String>) {
    let out = org
        .describe_account()
        .account_id(account)
        .send()
        .await
        .expect("describe account");
    let a = out.account().expect("account");
    #[allow(deprecated)]
    let status = a.status().map(|s| s.as_str().to_owned());
    (a.state().map(|s| s.as_str().to_owned()), status)
}

#[tokio::test]
async fn an_account_closed_behind_the_projects_back_is_retired_by_the_audit_and_announced_once() {
    let org = organizations().await;
    let account = new_account(&org, "closed-behind").await;
    let portal = format!(
        "arn:aws:workspaces-web:us-east-1:{account}:portal/2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f"
    );
    let stack = Stack::start_with(
        "closed-behind",
        EmulatorConfig::default()
            .with_account(AccountConfig::new(&account).with_portal(portal.clone())),
    )
    .await;
    stack
        .put_secret(
            "onboarding/closed",
            &json!({ "client_secret": "CLOSED-CANARY" }),
        )
        .await;
    let request = onboarding_requested(
        "closed-1",
        &account,
        oidc_provider(&portal, "corp-oidc", "onboarding/closed"),
    );
    let (reply, _) = stack
        .instance_handler(stack.engine())
        .handle(request.clone(), None)
        .await
        .unwrap();
    assert_eq!(reply["status"], "ready", "{reply}");
    let (reply, _) = stack
        .web_handler(stack.engine())
        .handle(request, None)
        .await
        .unwrap();
    assert_eq!(reply["status"], "ready", "{reply}");
    stack.emitted().await;

    // Closed behind the project's back: no closure event reaches the functions.
    org.close_account()
        .account_id(&account)
        .send()
        .await
        .expect("close the account in moto");
    stack.emulator.close_account(&account);
    // What moto says of a closed account: State and the deprecated Status both SUSPENDED
    // (the reconciler reads State).
    assert_eq!(
        state_in_moto(&org, &account).await,
        (Some("SUSPENDED".into()), Some("SUSPENDED".into()))
    );

    let report = stack.reconcile(true).await;
    assert_eq!(
        (
            report.retired,
            report.tally.retired,
            report.audited,
            report.not_audited,
            report.drift,
            report.repaired,
            report.failed,
            report.tally.failures
        ),
        (2, 2, 0, 0, 0, 0, 0, 0),
        "{report:#?}"
    );
    let metrics = report.metrics();
    assert!(metrics.contains(&("StepsRetired", 2)), "{metrics:?}");
    assert!(metrics.contains(&("StepsNotAudited", 0)), "{metrics:?}");
    let lines: Vec<_> = report
        .steps
        .iter()
        .filter(|l| l.action == "retire")
        .collect();
    assert_eq!(lines.len(), 2, "{report:#?}");
    for line in lines {
        assert!(
            line.result.contains(&account) && line.result.contains("SUSPENDED"),
            "{line:?}"
        );
    }

    let mut steps = stack
        .engine()
        .ledger()
        .get(&format!("account#{account}"))
        .await
        .unwrap();
    // The providers' departure mark (a later request for another provider finds it): retired,
    // no resource, announced to nobody.
    let mark = steps
        .iter()
        .position(|s| s.key.step == "web-identity-provider")
        .map(|i| steps.remove(i))
        .expect("the providers' departure mark");
    assert!(mark.status == Status::Retired && mark.resource_arn.is_none() && mark.announced);
    assert_eq!(steps.len(), 2, "{steps:#?}");
    for step in &steps {
        assert_eq!(step.status, Status::Retired, "{step:?}");
        assert!(step.announced, "{step:?}");
        let why = step.retired.as_ref().expect("why it was retired");
        assert_eq!(why["event"], "DescribeAccount", "{why:?}");
        assert_eq!(why["departure"]["state"], "SUSPENDED", "{why:?}");
        assert!(step.drift.is_none(), "{step:?}");
    }
    let emitted = stack.emitted().await;
    let offboarded = of_type(&emitted, OFFBOARDED);
    assert_eq!(offboarded.len(), 2, "{emitted:#?}");
    assert!(offboarded
        .iter()
        .all(|e| e["detail"]["accountId"] == account));
    assert!(
        of_type(&emitted, "Onboarding Drift Detected").is_empty()
            && of_type(&emitted, "Onboarding Step Failed").is_empty(),
        "{emitted:#?}"
    );

    // Announced once: the next run finds nothing of the account to audit or retire.
    let report = stack.reconcile(true).await;
    assert_eq!(
        (
            report.retired,
            report.audited,
            report.not_audited,
            report.drift
        ),
        (0, 0, 0, 0),
        "{report:#?}"
    );
    assert!(stack.emitted().await.is_empty());
}

#[tokio::test]
async fn a_departed_account_is_retired_by_the_audit() {
    let org = organizations().await;
    let account = new_account(&org, "departed").await;
    let stack = Stack::start("departed").await;
    let (reply, _) = stack
        .instance_handler(stack.engine())
        .handle(
            onboarding_requested("departed-1", &account, json!({})),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply["status"], "ready", "{reply}");
    stack.emitted().await;
    // Removed from the organization (no event reached the functions); its role is gone.
    org.remove_account_from_organization()
        .account_id(&account)
        .send()
        .await
        .expect("remove the account in moto");
    stack.emulator.close_account(&account);

    let report = stack.reconcile(false).await;
    assert_eq!(
        (report.retired, report.not_audited, report.drift),
        (1, 0, 0),
        "{report:#?}"
    );
    let step = stack
        .engine()
        .ledger()
        .get_step(&StepKey::account(&account, INSTANCE))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(step.status, Status::Retired);
    let why = step.retired.unwrap();
    assert!(
        why["reason"]
            .as_str()
            .unwrap()
            .contains("AccountNotFoundException"),
        "{why:?}"
    );
    assert_eq!(of_type(&stack.emitted().await, OFFBOARDED).len(), 1);
}

/// A READY instance step of `account`, as a delivery records it (its member role refuses
/// every AssumeRole from the start, so no delivery could have made it here).
async fn ready_instance_step(stack: &Stack, account: &str) -> StepKey {
    let ledger = stack.engine().ledger().clone();
    let key = StepKey::account(account, INSTANCE);
    let fields = Fields::new();
    let revision = Revision::at(Some("2026-12-01T09:00:00Z"), "active-1");
    let applied = Applied {
        state: &fields,
        revision: &revision,
    };
    let claim = ledger
        .claim_with(
            &key,
            &ClaimRequest {
                request_hash: "h",
                event_id: "active-1",
                lease: Duration::from_secs(30),
                deadline: None,
            },
            Some(Applied {
                state: &fields,
                revision: &revision,
            }),
        )
        .await
        .unwrap();
    let Claim::Acquired(lease) = claim else {
        panic!("claimed: {claim:?}");
    };
    let arn = "arn:aws:sso:::instance/ssoins-00000000000000aa";
    let ready = ledger
        .mark_ready(&lease, arn, Origin::Created, &applied)
        .await
        .unwrap();
    ledger.mark_ready_announced(&ready).await.unwrap();
    key
}

#[tokio::test]
async fn an_active_account_that_cannot_be_reached_is_counted_not_audited_and_named() {
    let org = organizations().await;
    let account = new_account(&org, "unreachable").await;
    let stack = Stack::start_with(
        "unreachable",
        EmulatorConfig::default().with_account(AccountConfig::new(&account).refusing_role("*")),
    )
    .await;
    let key = ready_instance_step(&stack, &account).await;
    assert_eq!(
        state_in_moto(&org, &account).await.0.as_deref(),
        Some("ACTIVE")
    );

    for run in 0..2 {
        let report = stack.reconcile(true).await;
        assert_eq!(
            (
                report.not_audited,
                report.audited,
                report.retired,
                report.drift,
                report.failed
            ),
            (1, 0, 0, 0, 0),
            "run {run}: {report:#?}"
        );
        assert!(
            report.metrics().contains(&("StepsNotAudited", 1)),
            "{report:?}"
        );
        let line = report
            .steps
            .iter()
            .find(|l| l.key == key.to_string())
            .expect("a line for the step");
        assert!(
            line.result
                .contains(&format!("account {account} cannot be reached"))
                && line.result.contains("ACTIVE")
                && line.result.contains("MemberRoleUnavailable"),
            "{line:?}"
        );
    }
    let step = stack
        .engine()
        .ledger()
        .get_step(&key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(step.status, Status::Ready);
    let unreachable = &step.drift.as_ref().expect("recorded for status")["unreachable"];
    assert_eq!(unreachable["code"], "MemberRoleUnavailable", "{step:?}");
    assert_eq!(unreachable["accountState"], "ACTIVE", "{step:?}");
    let emitted = stack.emitted().await;
    assert!(emitted.is_empty(), "nothing announced: {emitted:#?}");
}
