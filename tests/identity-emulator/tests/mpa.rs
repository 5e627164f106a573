//! Multi-party approval identity sources through the real `aws-sdk-mpa` client.

mod common;

use std::time::Duration;

use aws_sdk_mpa::error::ProvideErrorMetadata;
use aws_sdk_mpa::operation::create_identity_source::CreateIdentitySourceError;
use aws_sdk_mpa::operation::get_identity_source::GetIdentitySourceError;
use aws_sdk_mpa::types::{
    IamIdentityCenter, IdentitySourceParameters, IdentitySourceStatus, IdentitySourceStatusCode,
    IdentitySourceType,
};
use common::*;
use identity_emulator::Config;

fn params(instance_arn: &str, region: &str) -> IdentitySourceParameters {
    IdentitySourceParameters::builder()
        .iam_identity_center(
            IamIdentityCenter::builder()
                .instance_arn(instance_arn)
                .region(region)
                .build()
                .unwrap(),
        )
        .build()
}

async fn settled(
    client: &aws_sdk_mpa::Client,
    arn: &str,
) -> aws_sdk_mpa::operation::get_identity_source::GetIdentitySourceOutput {
    eventually(Duration::from_secs(5), || async {
        let out = client
            .get_identity_source()
            .identity_source_arn(arn)
            .send()
            .await
            .unwrap();
        (out.status() != Some(&IdentitySourceStatus::Creating)).then_some(out)
    })
    .await
}

#[tokio::test]
async fn identity_source_lifecycle_on_the_organization_instance() {
    // long enough that the first read surely sees the in-progress state on a busy machine
    let emu = start(Config {
        instance_activation_ms: 1000,
        identity_source_activation_ms: 1000,
        ..fast_config()
    })
    .await;
    let org = emu.config().organization_instance_arn().to_string();
    let client = mpa(&management(&emu));

    let created = client
        .create_identity_source()
        .identity_source_parameters(params(&org, "us-east-1"))
        .client_token("org-identity-source")
        .tags("Team", "platform")
        .send()
        .await
        .expect("create");
    let arn = created.identity_source_arn().unwrap().to_string();
    assert!(
        regex::Regex::new(r"^arn:aws:mpa:us-east-1:111111111111:identity-source/[0-9a-f-]{36}$")
            .unwrap()
            .is_match(&arn),
        "{arn}"
    );
    assert_eq!(
        created.identity_source_type(),
        Some(&IdentitySourceType::IamIdentityCenter)
    );
    assert!(created.creation_time().is_some());

    let got = client
        .get_identity_source()
        .identity_source_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), Some(&IdentitySourceStatus::Creating));

    let got = settled(&client, &arn).await;
    assert_eq!(got.status(), Some(&IdentitySourceStatus::Active));
    let iic = got
        .identity_source_parameters()
        .unwrap()
        .as_iam_identity_center()
        .unwrap();
    assert_eq!(iic.instance_arn(), Some(org.as_str()));
    assert_eq!(iic.region(), Some("us-east-1"));
    assert!(iic.approval_portal_url().is_some());

    let pages: Vec<_> = client
        .list_identity_sources()
        .max_results(1)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(pages.len(), 1);
    let listed = pages[0].identity_sources();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].identity_source_arn(), Some(arn.as_str()));
    assert_eq!(listed[0].status(), Some(&IdentitySourceStatus::Active));

    client
        .delete_identity_source()
        .identity_source_arn(&arn)
        .send()
        .await
        .unwrap();
    let err = client
        .get_identity_source()
        .identity_source_arn(&arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    match err {
        GetIdentitySourceError::ResourceNotFoundException(e) => assert!(e.message().contains(&arn)),
        other => panic!("expected ResourceNotFoundException, got {other:?}"),
    }
    assert!(client
        .list_identity_sources()
        .send()
        .await
        .unwrap()
        .identity_sources()
        .is_empty());
}

#[tokio::test]
async fn one_identity_source_per_organization() {
    let emu = start(fast_config()).await;
    let org = emu.config().organization_instance_arn().to_string();
    let client = mpa(&management(&emu));
    client
        .create_identity_source()
        .identity_source_parameters(params(&org, "us-east-1"))
        .send()
        .await
        .unwrap();
    let err = client
        .create_identity_source()
        .identity_source_parameters(params(&org, "us-east-1"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    match err {
        CreateIdentitySourceError::ServiceQuotaExceededException(e) => {
            assert!(e.message().contains("only one"), "{e:?}")
        }
        other => panic!("expected ServiceQuotaExceededException, got {other:?}"),
    }
}

#[tokio::test]
async fn only_the_management_account_may_create_it() {
    let emu = start(fast_config()).await;
    let org = emu.config().organization_instance_arn().to_string();
    let member = mpa(&assumed(&emu, MEMBER).await);
    let err = member
        .create_identity_source()
        .identity_source_parameters(params(&org, "us-east-1"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    match err {
        CreateIdentitySourceError::AccessDeniedException(e) => {
            assert!(e.message().contains("management account"))
        }
        other => panic!("expected AccessDeniedException, got {other:?}"),
    }
}

#[tokio::test]
async fn an_account_instance_ends_in_error_not_valid() {
    let emu = start(fast_config()).await;
    let member_sso = sso(&assumed(&emu, MEMBER).await);
    let account_instance = member_sso
        .create_instance()
        .send()
        .await
        .unwrap()
        .instance_arn
        .unwrap();

    let client = mpa(&management(&emu));
    let arn = client
        .create_identity_source()
        .identity_source_parameters(params(&account_instance, "us-east-1"))
        .send()
        .await
        .unwrap()
        .identity_source_arn
        .unwrap();
    let got = settled(&client, &arn).await;
    assert_eq!(got.status(), Some(&IdentitySourceStatus::Error));
    assert_eq!(
        got.status_code(),
        Some(&IdentitySourceStatusCode::IdcInstanceNotValid)
    );
    assert!(got.status_message().unwrap().contains("account instance"));

    // after deleting it, an unknown instance ends in IDC_INSTANCE_NOT_FOUND
    client
        .delete_identity_source()
        .identity_source_arn(&arn)
        .send()
        .await
        .unwrap();
    let arn = client
        .create_identity_source()
        .identity_source_parameters(params(
            "arn:aws:sso:::instance/ssoins-0000000000000000",
            "us-east-1",
        ))
        .send()
        .await
        .unwrap()
        .identity_source_arn
        .unwrap();
    let got = settled(&client, &arn).await;
    assert_eq!(
        got.status_code(),
        Some(&IdentitySourceStatusCode::IdcInstanceNotFound)
    );
}

#[tokio::test]
async fn client_token_same_same_same_different_and_none() {
    let emu = start(fast_config()).await;
    let org = emu.config().organization_instance_arn().to_string();
    let client = mpa(&management(&emu));
    let create = |region: &'static str, token: Option<&'static str>| {
        client
            .create_identity_source()
            .identity_source_parameters(params(&org, region))
            .set_client_token(token.map(str::to_string))
            .send()
    };
    let a = create("us-east-1", Some("tok")).await.unwrap();
    let b = create("us-east-1", Some("tok")).await.unwrap();
    assert_eq!(a.identity_source_arn(), b.identity_source_arn());
    assert_eq!(a.creation_time(), b.creation_time());
    assert_eq!(emu.counters().created("CreateIdentitySource"), 1);
    assert_eq!(emu.counters().returned_existing("CreateIdentitySource"), 1);

    let err = create("eu-west-1", Some("tok"))
        .await
        .unwrap_err()
        .into_service_error();
    match err {
        CreateIdentitySourceError::ValidationException(e) => {
            assert!(e.message().contains("IdempotentParameterMismatch"))
        }
        other => panic!("expected ValidationException, got {other:?}"),
    }

    // no token: the SDK fills a fresh one, so the organization's quota answers
    let err = create("us-east-1", None)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(
        err,
        CreateIdentitySourceError::ServiceQuotaExceededException(_)
    ));
    emu.reset();
    create("us-east-1", None)
        .await
        .expect("create without a token");
    assert_eq!(emu.counters().created("CreateIdentitySource"), 1);
}

#[tokio::test]
async fn model_constraints_are_enforced() {
    let emu = start(fast_config()).await;
    let client = mpa(&management(&emu));
    let err = client
        .create_identity_source()
        .identity_source_parameters(params("arn:aws:sso:::instance/bad", "us-east-1"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    match err {
        CreateIdentitySourceError::ValidationException(e) => {
            assert!(
                e.message()
                    .contains("IdentitySourceParameters.IamIdentityCenter.InstanceArn"),
                "{e:?}"
            )
        }
        other => panic!("expected ValidationException, got {other:?}"),
    }
    let org = emu.config().organization_instance_arn().to_string();
    let err = client
        .create_identity_source()
        .identity_source_parameters(params(&org, &"r".repeat(1001)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.into_service_error().code(), Some("ValidationException"));

    let err = client
        .list_identity_sources()
        .max_results(21)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.into_service_error().code(), Some("ValidationException"));

    let err = client
        .get_identity_source()
        .identity_source_arn("arn:aws:mpa:us-east-1:111111111111:identity-source/unknown")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(
        err,
        GetIdentitySourceError::ResourceNotFoundException(_)
    ));
    assert_eq!(emu.counters().created("CreateIdentitySource"), 0);
}

#[tokio::test]
async fn requests_signed_for_another_region_are_refused() {
    // the organization instance lives in eu-west-1, like the stack's home Region
    let emu = start(Config {
        region: "eu-west-1".into(),
        ..fast_config()
    })
    .await;
    let org = emu.config().organization_instance_arn().to_string();
    let client = mpa(&management_in(&emu, "eu-west-1"));

    let err = client
        .create_identity_source()
        .identity_source_parameters(params(&org, "eu-west-1"))
        .client_token("org-source")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    let err = err.into_service_error();
    // not a modeled error: the SDK surfaces it as unhandled, with its code and message
    assert!(
        !matches!(
            err,
            CreateIdentitySourceError::AccessDeniedException(_)
                | CreateIdentitySourceError::ValidationException(_)
                | CreateIdentitySourceError::ServiceQuotaExceededException(_)
                | CreateIdentitySourceError::ThrottlingException(_)
                | CreateIdentitySourceError::InternalServerException(_)
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), Some("InvalidSignatureException"));
    let msg = err.message().unwrap();
    assert!(
        msg.contains("eu-west-1") && msg.contains("us-east-1"),
        "{msg}"
    );
    // refused before anything happened, and only one attempt (not retried)
    assert_eq!(emu.counters().calls("CreateIdentitySource"), 1);
    assert_eq!(emu.counters().created("CreateIdentitySource"), 0);

    let list = client.list_identity_sources().send().await.unwrap_err();
    assert_eq!(
        list.into_service_error().code(),
        Some("InvalidSignatureException")
    );
    let get = client
        .get_identity_source()
        .identity_source_arn("arn:aws:mpa:eu-west-1:111111111111:identity-source/0a1b2c3d-0000-4000-8000-000000000000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        get.into_service_error().code(),
        Some("InvalidSignatureException")
    );

    // the same call from us-east-1 works, and points across Regions at eu-west-1
    let east = mpa(&management_in(&emu, "us-east-1"));
    let arn = east
        .create_identity_source()
        .identity_source_parameters(params(&org, "eu-west-1"))
        .client_token("org-source")
        .send()
        .await
        .expect("from us-east-1")
        .identity_source_arn
        .unwrap();
    assert!(
        arn.starts_with("arn:aws:mpa:us-east-1:111111111111:identity-source/"),
        "{arn}"
    );
    let got = settled(&east, &arn).await;
    assert_eq!(got.status(), Some(&IdentitySourceStatus::Active));
    let iic = got
        .identity_source_parameters()
        .unwrap()
        .as_iam_identity_center()
        .unwrap();
    assert_eq!(iic.region(), Some("eu-west-1"));
}

#[tokio::test]
async fn the_organization_instance_must_be_named_in_its_own_region() {
    let emu = start(Config {
        region: "eu-west-1".into(),
        ..fast_config()
    })
    .await;
    let org = emu.config().organization_instance_arn().to_string();
    let client = mpa(&management(&emu));
    // from us-east-1, but naming the wrong Region of the instance
    let arn = client
        .create_identity_source()
        .identity_source_parameters(params(&org, "us-east-1"))
        .send()
        .await
        .unwrap()
        .identity_source_arn
        .unwrap();
    let got = settled(&client, &arn).await;
    assert_eq!(
        got.status_code(),
        Some(&IdentitySourceStatusCode::IdcInstanceNotFound)
    );
}
