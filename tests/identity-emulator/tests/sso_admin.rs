//! IAM Identity Center account instances through the real `aws-sdk-ssoadmin` client.

mod common;

use std::time::Duration;

use aws_sdk_ssoadmin::error::ProvideErrorMetadata;
use aws_sdk_ssoadmin::operation::create_instance::CreateInstanceError;
use aws_sdk_ssoadmin::operation::describe_instance::DescribeInstanceError;
use aws_sdk_ssoadmin::types::{InstanceStatus, Tag};
use common::*;
use identity_emulator::{AccountConfig, Config, SeededInstance};

const ARN_PATTERN: &str = r"^arn:aws(-[a-z]{1,5}){0,3}:sso:::instance/(sso)?ins-[a-zA-Z0-9-.]{16}$";

#[tokio::test]
async fn account_instance_lifecycle_in_a_member_account() {
    // long enough that the first read surely sees the in-progress state on a busy machine
    let emu = start(Config {
        instance_activation_ms: 1000,
        identity_source_activation_ms: 1000,
        ..fast_config()
    })
    .await;
    let member = sso(&assumed(&emu, MEMBER).await);

    let created = member
        .create_instance()
        .name("payments-prod")
        .client_token("token-1")
        .tags(
            Tag::builder()
                .key("CostCenter")
                .value("1234")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create");
    let arn = created.instance_arn().expect("arn").to_string();
    assert!(
        regex::Regex::new(ARN_PATTERN).unwrap().is_match(&arn),
        "{arn}"
    );

    let d = member
        .describe_instance()
        .instance_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), Some(&InstanceStatus::CreateInProgress));
    assert_eq!(d.owner_account_id(), Some(MEMBER));
    assert_eq!(d.name(), Some("payments-prod"));
    assert!(d.identity_store_id().unwrap().starts_with("d-"));
    assert!(d.created_date().is_some());

    let status = eventually(Duration::from_secs(5), || async {
        let d = member
            .describe_instance()
            .instance_arn(&arn)
            .send()
            .await
            .unwrap();
        (d.status() != Some(&InstanceStatus::CreateInProgress)).then(|| d.status().cloned())
    })
    .await;
    assert_eq!(status, Some(InstanceStatus::Active));

    let listed = member.list_instances().send().await.unwrap();
    let arns: Vec<_> = listed
        .instances()
        .iter()
        .filter_map(|i| i.instance_arn())
        .collect();
    assert_eq!(arns, vec![arn.as_str()]);

    member
        .delete_instance()
        .instance_arn(&arn)
        .send()
        .await
        .unwrap();
    let gone = member
        .describe_instance()
        .instance_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        gone.into_service_error(),
        DescribeInstanceError::AccessDeniedException(_)
    ));
    // the account may create a new one after deletion
    member
        .create_instance()
        .send()
        .await
        .expect("recreate after delete");
}

#[tokio::test]
async fn instances_belong_to_the_assumed_account_and_management_is_refused() {
    let emu = start(fast_config()).await;
    let member = sso(&assumed(&emu, MEMBER).await);
    let arn = member
        .create_instance()
        .send()
        .await
        .unwrap()
        .instance_arn
        .unwrap();
    let state = emu.state();
    let owned = &state["accounts"][MEMBER]["instances"][0]["instance_arn"];
    assert_eq!(owned.as_str(), Some(arn.as_str()));

    let mgmt = sso(&management(&emu));
    let err = mgmt
        .create_instance()
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    // AWS's answer (HTTP 400): never a Conflict, which callers read as "it exists".
    match err {
        CreateInstanceError::ValidationException(e) => assert_eq!(
            e.message(),
            Some("Organization management account is not allowed to perform the operation."),
            "{e:?}"
        ),
        other => panic!("expected ValidationException, got {other:?}"),
    }
    // another member account cannot see the instance
    let other = sso(&assumed(&emu, "333333333333").await);
    let err = other
        .describe_instance()
        .instance_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        DescribeInstanceError::AccessDeniedException(_)
    ));
}

#[tokio::test]
async fn a_second_instance_in_the_same_account_conflicts() {
    let emu = start(fast_config()).await;
    let member = sso(&assumed(&emu, MEMBER).await);
    let first = member
        .create_instance()
        .client_token("a")
        .send()
        .await
        .unwrap();
    let err = member
        .create_instance()
        .client_token("b")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    match err {
        CreateInstanceError::ConflictException(e) => {
            let msg = e.message().unwrap();
            assert!(msg.contains("already exists"), "{msg}");
            assert!(msg.contains(first.instance_arn().unwrap()), "{msg}");
        }
        other => panic!("expected ConflictException, got {other:?}"),
    }
    assert_eq!(emu.counters().created("CreateInstance"), 1);
}

#[tokio::test]
async fn client_token_same_same_same_different_and_none() {
    let emu = start(fast_config()).await;
    let member = sso(&assumed(&emu, MEMBER).await);
    let a = member
        .create_instance()
        .name("x")
        .client_token("tok")
        .send()
        .await
        .unwrap();
    let b = member
        .create_instance()
        .name("x")
        .client_token("tok")
        .send()
        .await
        .unwrap();
    assert_eq!(a.instance_arn(), b.instance_arn());
    let counters = emu.counters();
    assert_eq!(counters.created("CreateInstance"), 1);
    assert_eq!(counters.returned_existing("CreateInstance"), 1);

    let err = member
        .create_instance()
        .name("y")
        .client_token("tok")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    // not modeled: the SDK surfaces it as unhandled, with its code and message
    assert!(
        !matches!(
            err,
            CreateInstanceError::ConflictException(_)
                | CreateInstanceError::ValidationException(_)
                | CreateInstanceError::AccessDeniedException(_)
                | CreateInstanceError::InternalServerException(_)
                | CreateInstanceError::ServiceQuotaExceededException(_)
                | CreateInstanceError::ThrottlingException(_)
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), Some("IdempotentParameterMismatch"));
    assert!(err.message().unwrap().contains("same client token"));

    // no token: the SDK fills one, and the create works
    let other = sso(&assumed(&emu, "333333333333").await);
    let c = other
        .create_instance()
        .send()
        .await
        .expect("create without a token");
    assert!(c.instance_arn().is_some());
    assert_eq!(emu.counters().created("CreateInstance"), 2);
}

#[tokio::test]
async fn configured_account_ends_in_create_failed() {
    let config = fast_config()
        .with_account(AccountConfig::new(MEMBER).failing_instance_creation("Quota reached"));
    let emu = start(config).await;
    let member = sso(&assumed(&emu, MEMBER).await);
    let arn = member
        .create_instance()
        .send()
        .await
        .unwrap()
        .instance_arn
        .unwrap();
    let d = eventually(Duration::from_secs(5), || async {
        let d = member
            .describe_instance()
            .instance_arn(&arn)
            .send()
            .await
            .unwrap();
        (d.status() != Some(&InstanceStatus::CreateInProgress)).then_some(d)
    })
    .await;
    assert_eq!(d.status(), Some(&InstanceStatus::CreateFailed));
    assert_eq!(d.status_reason(), Some("Quota reached"));
}

#[tokio::test]
async fn management_lists_the_organization_over_several_pages() {
    let emu = start(fast_config()).await;
    let mut created = Vec::new();
    for i in 0..12u64 {
        let account = format!("{:012}", 400_000_000_000u64 + i);
        let client = sso(&assumed(&emu, &account).await);
        created.push(
            client
                .create_instance()
                .send()
                .await
                .unwrap()
                .instance_arn
                .unwrap(),
        );
    }
    let mgmt = sso(&management(&emu));
    let first = mgmt.list_instances().max_results(5).send().await.unwrap();
    assert_eq!(first.instances().len(), 5);
    assert!(first.next_token().is_some());

    let pages: Vec<_> = mgmt
        .list_instances()
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(pages.len(), 2, "10 per page: 13 instances make 2 pages");
    let all: Vec<String> = pages
        .iter()
        .flat_map(|p| {
            p.instances()
                .iter()
                .filter_map(|i| i.instance_arn().map(str::to_string))
        })
        .collect();
    assert_eq!(all.len(), 13);
    assert!(all.contains(&emu.config().organization_instance_arn().to_string()));
    for arn in &created {
        assert!(all.contains(arn));
    }
}

#[tokio::test]
async fn model_constraints_are_enforced() {
    let emu = start(Config::default()).await;
    let member = sso(&assumed(&emu, MEMBER).await);

    let err = member
        .create_instance()
        .name("n".repeat(256))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    match &err {
        CreateInstanceError::ValidationException(e) => {
            let msg = e.message().unwrap();
            assert!(msg.contains("'Name'") && msg.contains("255"), "{msg}");
        }
        other => panic!("expected ValidationException, got {other:?}"),
    }

    let err = member
        .create_instance()
        .name("has space")
        .send()
        .await
        .unwrap_err();
    let msg = err
        .into_service_error()
        .message()
        .unwrap_or_default()
        .to_string();
    assert!(msg.contains("regular expression pattern"), "{msg}");

    let err = member
        .create_instance()
        .client_token("t".repeat(65))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, CreateInstanceError::ValidationException(_)),
        "{err:?}"
    );

    let err = member
        .describe_instance()
        .instance_arn("arn:aws:sso:::instance/not-an-instance")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    match err {
        DescribeInstanceError::ValidationException(e) => {
            assert!(e.message().unwrap().contains("InstanceArn"))
        }
        other => panic!("expected ValidationException, got {other:?}"),
    }

    let err = member
        .list_instances()
        .max_results(0)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.into_service_error().code(), Some("ValidationException"));
    assert_eq!(emu.counters().created("CreateInstance"), 0);
}

#[tokio::test]
async fn a_seeded_instance_is_owned_from_the_start_and_blocks_a_create() {
    let config = fast_config().with_account(
        AccountConfig::new(MEMBER).with_instance(SeededInstance::active(Some("legacy-prod"))),
    );
    let emu = start(config).await;
    let seeded = emu.state()["accounts"][MEMBER]["instances"][0].clone();
    let arn = seeded["instance_arn"].as_str().unwrap().to_string();
    assert!(
        regex::Regex::new(ARN_PATTERN).unwrap().is_match(&arn),
        "{arn}"
    );
    assert_eq!(seeded["seeded"], true);
    assert_eq!(seeded["status"], "ACTIVE");
    let store = seeded["identity_store_id"].as_str().unwrap().to_string();
    assert!(store.starts_with("d-"), "{store}");

    let member = sso(&assumed(&emu, MEMBER).await);
    let listed = member.list_instances().send().await.unwrap();
    assert_eq!(listed.instances().len(), 1);
    let i = &listed.instances()[0];
    assert_eq!(i.instance_arn(), Some(arn.as_str()));
    assert_eq!(i.status(), Some(&InstanceStatus::Active));
    assert_eq!(i.name(), Some("legacy-prod"));

    let d = member
        .describe_instance()
        .instance_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(d.owner_account_id(), Some(MEMBER));
    assert_eq!(d.identity_store_id(), Some(store.as_str()));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let age = now - d.created_date().unwrap().secs();
    assert!(
        (86_000..=87_000).contains(&age),
        "created {age} s ago, expected one day"
    );

    for token in [Some("adopt-1"), None] {
        let err = member
            .create_instance()
            .name("legacy-prod")
            .set_client_token(token.map(str::to_string))
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        match err {
            CreateInstanceError::ConflictException(e) => {
                assert!(e.message().unwrap().contains(&arn), "{e:?}")
            }
            other => panic!("expected ConflictException, got {other:?}"),
        }
    }
    assert_eq!(emu.counters().created("CreateInstance"), 0);

    // the management account sees it with the rest of the organization
    let org = sso(&management(&emu))
        .list_instances()
        .send()
        .await
        .unwrap();
    assert!(org
        .instances()
        .iter()
        .any(|i| i.instance_arn() == Some(arn.as_str())));

    // reset keeps the seeded instance and its ARN
    emu.reset();
    assert_eq!(
        emu.state()["accounts"][MEMBER]["instances"][0]["instance_arn"],
        arn.as_str()
    );
}

#[tokio::test]
async fn seeded_instances_keep_their_status() {
    let failed = SeededInstance {
        name: None,
        status: "CREATE_FAILED".into(),
        status_reason: Some("KMS key unavailable".into()),
    };
    let deleting = SeededInstance {
        status: "DELETE_IN_PROGRESS".into(),
        ..SeededInstance::active(Some("old"))
    };
    let creating = SeededInstance {
        status: "CREATE_IN_PROGRESS".into(),
        ..SeededInstance::active(None)
    };
    let accounts = [
        ("444444444444", failed, InstanceStatus::CreateFailed),
        ("555555555555", deleting, InstanceStatus::DeleteInProgress),
        ("666666666666", creating, InstanceStatus::CreateInProgress),
    ];
    let mut config = fast_config();
    for (account, seeded, _) in &accounts {
        config = config.with_account(AccountConfig::new(*account).with_instance(seeded.clone()));
    }
    let emu = start(config).await;
    // longer than any activation: seeded statuses never move
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (account, seeded, status) in &accounts {
        let client = sso(&assumed(&emu, account).await);
        let listed = client.list_instances().send().await.unwrap();
        let arn = listed.instances()[0].instance_arn().unwrap().to_string();
        let d = client
            .describe_instance()
            .instance_arn(&arn)
            .send()
            .await
            .unwrap();
        assert_eq!(d.status(), Some(status), "{account}");
        assert_eq!(d.status_reason(), seeded.status_reason.as_deref());
        let err = client
            .create_instance()
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(
            matches!(err, CreateInstanceError::ConflictException(_)),
            "{account}: {err:?}"
        );
    }
}

#[tokio::test]
async fn bad_seeded_instances_are_refused_at_start() {
    let cases = [
        (
            AccountConfig::new(MEMBER).with_instance(SeededInstance {
                status: "PENDING".into(),
                ..SeededInstance::active(None)
            }),
            "status",
        ),
        (
            AccountConfig::new(MEMBER).with_instance(SeededInstance::active(Some("bad name"))),
            "Name",
        ),
        (
            AccountConfig::new(MEMBER).with_instance(SeededInstance {
                status_reason: Some("why".into()),
                ..SeededInstance::active(None)
            }),
            "status_reason",
        ),
        (
            AccountConfig::new(MANAGEMENT).with_instance(SeededInstance::active(None)),
            "management account",
        ),
    ];
    for (account, expected) in cases {
        let err = identity_emulator::start(fast_config().with_account(account), "127.0.0.1:0")
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains(expected), "{err}");
    }
}

#[tokio::test]
async fn account_instances_disallowed_by_the_organization_are_refused() {
    let emu = start(fast_config().disallowing_account_instances()).await;
    let member = sso(&assumed(&emu, MEMBER).await);
    for token in [Some("step-1"), Some("step-1"), None] {
        let err = member
            .create_instance()
            .name("payments")
            .set_client_token(token.map(str::to_string))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
        match err.into_service_error() {
            CreateInstanceError::AccessDeniedException(e) => {
                let msg = e.message().unwrap();
                assert!(
                    msg.contains("account instances") && msg.contains("not enabled"),
                    "{msg}"
                );
            }
            other => panic!("expected AccessDeniedException, got {other:?}"),
        }
    }
    let counters = emu.counters();
    assert_eq!(counters.created("CreateInstance"), 0);
    assert_eq!(counters.returned_existing("CreateInstance"), 0);
    assert!(emu.state()["accounts"].get(MEMBER).is_none());
    // reading is unaffected
    member.list_instances().send().await.expect("list");
}

#[tokio::test]
async fn an_organization_instance_in_an_opt_in_region_blocks_account_instances() {
    // Allowed by the setting, blocked by the Region all the same.
    let emu = start(fast_config().with_organization_instance_in_opt_in_region()).await;
    let member = sso(&assumed(&emu, MEMBER).await);
    let err = member
        .create_instance()
        .client_token("step-1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    match err.into_service_error() {
        CreateInstanceError::AccessDeniedException(e) => {
            let msg = e.message().unwrap();
            assert!(msg.contains("opt-in Region"), "{msg}");
        }
        other => panic!("expected AccessDeniedException, got {other:?}"),
    }
    assert_eq!(emu.counters().created("CreateInstance"), 0);
    assert!(emu.state()["accounts"].get(MEMBER).is_none());
}
