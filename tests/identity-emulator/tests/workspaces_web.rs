//! WorkSpaces Web portals and identity providers through the real `aws-sdk-workspacesweb`
//! client.

mod common;

use std::collections::HashMap;

use aws_sdk_workspacesweb::error::ProvideErrorMetadata;
use aws_sdk_workspacesweb::operation::create_identity_provider::CreateIdentityProviderError;
use aws_sdk_workspacesweb::operation::get_identity_provider::GetIdentityProviderError;
use aws_sdk_workspacesweb::types::{
    AuthenticationType, IdentityProviderType, Tag, ValidationExceptionReason,
};
use common::*;
use identity_emulator::{AccountConfig, SeededProvider};

const SUBRESOURCE_ARN: &str = r"^arn:[\w+=/,.@-]+:[a-zA-Z0-9\-]+:[a-zA-Z0-9\-]*:[a-zA-Z0-9]{1,12}:[a-zA-Z]+(/[a-fA-F0-9\-]{36}){2,}$";
const SEEDED_PORTAL: &str =
    "arn:aws:workspaces-web:us-east-1:333333333333:portal/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b";
const CANARY: &str = "CANARY-client-secret-5e1f";

fn oidc_details() -> HashMap<String, String> {
    [
        ("client_id", "abc"),
        ("client_secret", CANARY),
        ("oidc_issuer", "https://idp.example.com"),
        ("authorize_scopes", "openid"),
        ("attributes_request_method", "GET"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

async fn new_portal(client: &aws_sdk_workspacesweb::Client) -> String {
    client
        .create_portal()
        .display_name("payments")
        .send()
        .await
        .expect("create portal")
        .portal_arn
}

#[tokio::test]
async fn portal_and_identity_provider_lifecycle() {
    let emu = start(fast_config()).await;
    let client = web(&assumed(&emu, MEMBER).await);

    let portal = client
        .create_portal()
        .display_name("payments")
        .client_token("portal-1")
        .send()
        .await
        .unwrap();
    let portal_arn = portal.portal_arn().to_string();
    assert!(portal_arn.starts_with(&format!(
        "arn:aws:workspaces-web:us-east-1:{MEMBER}:portal/"
    )));
    assert!(portal.portal_endpoint().ends_with(".workspaces-web.com"));
    let got = client
        .get_portal()
        .portal_arn(&portal_arn)
        .send()
        .await
        .unwrap();
    let p = got.portal().unwrap();
    assert_eq!(p.portal_arn(), portal_arn);
    assert_eq!(p.display_name(), Some("payments"));

    let created = client
        .create_identity_provider()
        .portal_arn(&portal_arn)
        .identity_provider_name("corp-oidc")
        .identity_provider_type(IdentityProviderType::Oidc)
        .set_identity_provider_details(Some(oidc_details()))
        .client_token("idp-1")
        .tags(
            Tag::builder()
                .key("Team")
                .value("platform")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create identity provider");
    let idp_arn = created.identity_provider_arn().to_string();
    assert!(
        regex::Regex::new(SUBRESOURCE_ARN)
            .unwrap()
            .is_match(&idp_arn),
        "{idp_arn}"
    );
    let portal_id = portal_arn.rsplit('/').next().unwrap();
    assert!(
        idp_arn.contains(&format!(":identityProvider/{portal_id}/")),
        "{idp_arn}"
    );

    let got = client
        .get_identity_provider()
        .identity_provider_arn(&idp_arn)
        .send()
        .await
        .unwrap();
    let idp = got.identity_provider().unwrap();
    assert_eq!(idp.identity_provider_name(), Some("corp-oidc"));
    assert_eq!(
        idp.identity_provider_type(),
        Some(&IdentityProviderType::Oidc)
    );
    assert_eq!(
        idp.identity_provider_details()
            .unwrap()
            .get("client_id")
            .map(String::as_str),
        Some("abc")
    );

    let listed = client
        .list_identity_providers()
        .portal_arn(&portal_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.identity_providers().len(), 1);
    assert_eq!(
        listed.identity_providers()[0].identity_provider_arn(),
        idp_arn
    );

    // the state dump shows detail keys, never values
    let state = emu.state().to_string();
    assert!(state.contains("client_secret") && !state.contains(CANARY));

    client
        .delete_identity_provider()
        .identity_provider_arn(&idp_arn)
        .send()
        .await
        .unwrap();
    let err = client
        .get_identity_provider()
        .identity_provider_arn(&idp_arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, GetIdentityProviderError::ResourceNotFoundException(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn identity_providers_list_over_several_pages() {
    let emu = start(fast_config()).await;
    let client = web(&assumed(&emu, MEMBER).await);
    let portal_arn = new_portal(&client).await;
    for i in 0..12 {
        client
            .create_identity_provider()
            .portal_arn(&portal_arn)
            .identity_provider_name(format!("saml-{i:02}"))
            .identity_provider_type(IdentityProviderType::Saml)
            .identity_provider_details("MetadataURL", "https://idp.example.com/metadata")
            .send()
            .await
            .unwrap();
    }
    let pages: Vec<_> = client
        .list_identity_providers()
        .portal_arn(&portal_arn)
        .max_results(5)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(pages.len(), 3);
    let names: Vec<_> = pages
        .iter()
        .flat_map(|p| {
            p.identity_providers()
                .iter()
                .filter_map(|i| i.identity_provider_name())
        })
        .collect();
    assert_eq!(names.len(), 12);
    assert_eq!(names[0], "saml-00");
    assert_eq!(names[11], "saml-11");
}

#[tokio::test]
async fn providers_need_an_existing_portal_of_the_calling_account() {
    let config =
        fast_config().with_account(AccountConfig::new("333333333333").with_portal(SEEDED_PORTAL));
    let emu = start(config).await;

    // the seeded portal exists for its own account
    let owner = web(&assumed(&emu, "333333333333").await);
    owner
        .get_portal()
        .portal_arn(SEEDED_PORTAL)
        .send()
        .await
        .expect("seeded portal");

    let client = web(&assumed(&emu, MEMBER).await);
    let missing = format!(
        "arn:aws:workspaces-web:us-east-1:{MEMBER}:portal/00000000-0000-4000-8000-000000000000"
    );
    for portal in [missing.as_str(), SEEDED_PORTAL] {
        let err = client
            .create_identity_provider()
            .portal_arn(portal)
            .identity_provider_name("corp-oidc")
            .identity_provider_type(IdentityProviderType::Oidc)
            .set_identity_provider_details(Some(oidc_details()))
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        match err {
            CreateIdentityProviderError::ResourceNotFoundException(e) => {
                assert!(e.message().unwrap().contains(portal));
                assert_eq!(e.resource_id(), Some(portal));
            }
            other => panic!("expected ResourceNotFoundException, got {other:?}"),
        }
    }
    assert_eq!(emu.counters().created("CreateIdentityProvider"), 0);
}

#[tokio::test]
async fn client_token_same_same_same_different_and_none() {
    let emu = start(fast_config()).await;
    let client = web(&assumed(&emu, MEMBER).await);
    let portal_arn = new_portal(&client).await;
    let create = |name: &'static str, token: Option<&'static str>| {
        client
            .create_identity_provider()
            .portal_arn(&portal_arn)
            .identity_provider_name(name)
            .identity_provider_type(IdentityProviderType::Oidc)
            .set_identity_provider_details(Some(oidc_details()))
            .set_client_token(token.map(str::to_string))
            .send()
    };
    let a = create("corp-oidc", Some("tok")).await.unwrap();
    let b = create("corp-oidc", Some("tok")).await.unwrap();
    assert_eq!(a.identity_provider_arn(), b.identity_provider_arn());
    assert_eq!(emu.counters().created("CreateIdentityProvider"), 1);
    assert_eq!(
        emu.counters().returned_existing("CreateIdentityProvider"),
        1
    );

    let err = create("other-oidc", Some("tok"))
        .await
        .unwrap_err()
        .into_service_error();
    match err {
        CreateIdentityProviderError::ConflictException(e) => {
            assert!(e.message().unwrap().contains("IdempotentParameterMismatch"))
        }
        other => panic!("expected ConflictException, got {other:?}"),
    }

    // no token works; a second provider of the same name on the portal conflicts
    create("second", None)
        .await
        .expect("create without a token");
    let err = create("second", None)
        .await
        .unwrap_err()
        .into_service_error();
    match err {
        CreateIdentityProviderError::ConflictException(e) => {
            assert_eq!(e.resource_type(), Some("IDENTITY_PROVIDER"));
            assert!(e.resource_id().is_some());
        }
        other => panic!("expected ConflictException, got {other:?}"),
    }
}

#[tokio::test]
async fn names_arns_types_and_details_are_validated() {
    let emu = start(fast_config()).await;
    let client = web(&assumed(&emu, MEMBER).await);
    let portal_arn = new_portal(&client).await;
    let attempt = |portal: String, name: String, kind: IdentityProviderType, details| {
        client
            .create_identity_provider()
            .portal_arn(portal)
            .identity_provider_name(name)
            .identity_provider_type(kind)
            .set_identity_provider_details(Some(details))
            .send()
    };

    // name out of range (1-32)
    let err = attempt(
        portal_arn.clone(),
        "n".repeat(33),
        IdentityProviderType::Oidc,
        oidc_details(),
    )
    .await
    .unwrap_err()
    .into_service_error();
    match err {
        CreateIdentityProviderError::ValidationException(e) => {
            assert_eq!(
                e.reason(),
                Some(&ValidationExceptionReason::FieldValidationFailed)
            );
            assert_eq!(e.field_list()[0].name(), "identityProviderName");
            assert!(e.message().unwrap().contains("less than or equal to 32"));
        }
        other => panic!("expected ValidationException, got {other:?}"),
    }

    // bad portal ARN
    let err = attempt(
        "arn:aws:workspaces-web:us-east-1:1:portal/x".into(),
        "corp".into(),
        IdentityProviderType::Oidc,
        oidc_details(),
    )
    .await
    .unwrap_err()
    .into_service_error();
    assert!(
        matches!(err, CreateIdentityProviderError::ValidationException(_)),
        "{err:?}"
    );
    assert!(err.message().unwrap().contains("portalArn"));

    // unknown provider type
    let err = attempt(
        portal_arn.clone(),
        "corp".into(),
        IdentityProviderType::from("Okta"),
        oidc_details(),
    )
    .await
    .unwrap_err()
    .into_service_error();
    match err {
        CreateIdentityProviderError::ValidationException(e) => {
            assert!(e.message().unwrap().contains("identityProviderType"));
            assert!(e.message().unwrap().contains("enum value set"));
        }
        other => panic!("expected ValidationException, got {other:?}"),
    }

    // details missing a required key, with an unknown one; the secret is never echoed
    let mut details = oidc_details();
    details.remove("oidc_issuer");
    details.insert("favourite_colour".into(), CANARY.into());
    let err = attempt(
        portal_arn.clone(),
        "corp".into(),
        IdentityProviderType::Oidc,
        details,
    )
    .await
    .unwrap_err()
    .into_service_error();
    match &err {
        CreateIdentityProviderError::ValidationException(e) => {
            let fields: Vec<_> = e.field_list().iter().map(|f| f.name()).collect();
            assert!(
                fields.contains(&"identityProviderDetails.oidc_issuer"),
                "{fields:?}"
            );
            assert!(
                fields.contains(&"identityProviderDetails.favourite_colour"),
                "{fields:?}"
            );
        }
        other => panic!("expected ValidationException, got {other:?}"),
    }
    assert!(!format!("{err:?}").contains(CANARY));

    // a SAML provider needs exactly one metadata source
    let err = attempt(
        portal_arn.clone(),
        "corp-saml".into(),
        IdentityProviderType::Saml,
        HashMap::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.into_service_error().code(), Some("ValidationException"));
    assert_eq!(emu.counters().created("CreateIdentityProvider"), 0);
}

fn seeded_oidc(name: &str) -> SeededProvider {
    SeededProvider {
        name: name.to_string(),
        provider_type: "OIDC".to_string(),
        details: oidc_details().into_iter().collect(),
    }
}

#[tokio::test]
async fn seeded_providers_exist_from_the_start_and_block_the_same_name() {
    let config = fast_config().with_account(
        AccountConfig::new("333333333333")
            .with_portal_provider(SEEDED_PORTAL, seeded_oidc("corp-oidc"))
            .with_portal_provider(
                SEEDED_PORTAL,
                SeededProvider {
                    name: "corp-saml".into(),
                    provider_type: "SAML".into(),
                    details: [(
                        "MetadataURL".to_string(),
                        "https://idp.example.com/m".to_string(),
                    )]
                    .into(),
                },
            ),
    );
    let emu = start(config).await;
    let state = emu.state();
    let seeded = state["accounts"]["333333333333"]["identity_providers"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(seeded.len(), 2);
    assert!(seeded.iter().all(|p| p["seeded"] == true));
    assert!(!state.to_string().contains(CANARY));
    let oidc_arn = seeded[0]["identity_provider_arn"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        regex::Regex::new(SUBRESOURCE_ARN)
            .unwrap()
            .is_match(&oidc_arn),
        "{oidc_arn}"
    );
    assert!(oidc_arn.contains("/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b/"));

    let owner = web(&assumed(&emu, "333333333333").await);
    let listed = owner
        .list_identity_providers()
        .portal_arn(SEEDED_PORTAL)
        .send()
        .await
        .unwrap();
    let names: Vec<_> = listed
        .identity_providers()
        .iter()
        .filter_map(|p| p.identity_provider_name())
        .collect();
    assert_eq!(names, vec!["corp-oidc", "corp-saml"]);
    let got = owner
        .get_identity_provider()
        .identity_provider_arn(&oidc_arn)
        .send()
        .await
        .unwrap();
    let idp = got.identity_provider().unwrap();
    assert_eq!(
        idp.identity_provider_type(),
        Some(&IdentityProviderType::Oidc)
    );
    assert_eq!(
        idp.identity_provider_details()
            .and_then(|d| d.get("client_secret"))
            .map(String::as_str),
        Some(CANARY)
    );
    let portal = owner
        .get_portal()
        .portal_arn(SEEDED_PORTAL)
        .send()
        .await
        .unwrap();
    assert_eq!(
        portal
            .portal()
            .and_then(|p| p.portal_status())
            .map(|s| s.as_str()),
        Some("Active")
    );

    // the same name, with or without a token, conflicts with the seeded provider
    for token in [Some("step-key"), None] {
        let err = owner
            .create_identity_provider()
            .portal_arn(SEEDED_PORTAL)
            .identity_provider_name("corp-oidc")
            .identity_provider_type(IdentityProviderType::Oidc)
            .set_identity_provider_details(Some(oidc_details()))
            .set_client_token(token.map(str::to_string))
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        match err {
            CreateIdentityProviderError::ConflictException(e) => {
                assert_eq!(e.resource_id(), Some(oidc_arn.as_str()));
                assert_eq!(e.resource_type(), Some("IDENTITY_PROVIDER"));
            }
            other => panic!("expected ConflictException, got {other:?}"),
        }
    }
    owner
        .create_identity_provider()
        .portal_arn(SEEDED_PORTAL)
        .identity_provider_name("corp-oidc-2")
        .identity_provider_type(IdentityProviderType::Oidc)
        .set_identity_provider_details(Some(oidc_details()))
        .send()
        .await
        .expect("another name");
    assert_eq!(emu.counters().created("CreateIdentityProvider"), 1);

    // reset: the seeded providers come back with the same ARNs, the created one is gone
    emu.reset();
    let after = emu.state()["accounts"]["333333333333"]["identity_providers"].clone();
    assert_eq!(after.as_array().unwrap().len(), 2);
    assert_eq!(after[0]["identity_provider_arn"], oidc_arn.as_str());
}

#[tokio::test]
async fn bad_seeded_providers_are_refused_at_start_without_their_secrets() {
    let mut missing_secret = seeded_oidc("corp");
    missing_secret.details.remove("client_secret");
    let mut unknown_key = seeded_oidc("corp");
    unknown_key.details.insert("password".into(), CANARY.into());
    let cases = [
        (vec![seeded_oidc("_bad")], "identityProviderName"),
        (
            vec![SeededProvider {
                provider_type: "Okta".into(),
                ..seeded_oidc("corp")
            }],
            "enum value set",
        ),
        (vec![missing_secret], "client_secret is required"),
        (vec![unknown_key], "password is not a detail"),
        (vec![seeded_oidc("corp"), seeded_oidc("corp")], "same name"),
    ];
    for (providers, expected) in cases {
        let mut account = AccountConfig::new("333333333333");
        for p in providers {
            account = account.with_portal_provider(SEEDED_PORTAL, p);
        }
        let err = identity_emulator::start(fast_config().with_account(account), "127.0.0.1:0")
            .await
            .err()
            .expect("refused");
        let msg = err.to_string();
        assert!(msg.contains(expected), "{msg}");
        assert!(!msg.contains(CANARY), "{msg}");
    }
}

const CENTER_PORTAL: &str =
    "arn:aws:workspaces-web:us-east-1:222222222222:portal/7a3e9c1d-2b4f-4c6a-8e0d-5f1b3c7a9e2d";

#[tokio::test]
async fn identity_center_portals_take_no_identity_provider() {
    let emu = start(
        fast_config()
            .with_account(AccountConfig::new(MEMBER).with_identity_center_portal(CENTER_PORTAL)),
    )
    .await;
    let client = web(&assumed(&emu, MEMBER).await);

    // GetPortal tells the authentication type: seeded, created with one, created without.
    let seeded = client.get_portal().portal_arn(CENTER_PORTAL).send().await;
    let seeded = seeded.unwrap().portal.unwrap();
    assert_eq!(
        seeded.authentication_type(),
        Some(&AuthenticationType::IamIdentityCenter)
    );
    let created = client
        .create_portal()
        .authentication_type(AuthenticationType::IamIdentityCenter)
        .send()
        .await
        .unwrap()
        .portal_arn;
    let standard = new_portal(&client).await;
    for (arn, kind) in [
        (&created, AuthenticationType::IamIdentityCenter),
        (&standard, AuthenticationType::Standard),
    ] {
        let portal = client.get_portal().portal_arn(arn).send().await.unwrap();
        assert_eq!(portal.portal.unwrap().authentication_type(), Some(&kind));
    }

    // A provider on either IAM Identity Center portal is refused and nothing is made.
    for (i, arn) in [CENTER_PORTAL, created.as_str()].into_iter().enumerate() {
        let err = client
            .create_identity_provider()
            .portal_arn(arn)
            .identity_provider_name("corp-oidc")
            .identity_provider_type(IdentityProviderType::Oidc)
            .set_identity_provider_details(Some(oidc_details()))
            .client_token(format!("center-{i}"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
        match err.into_service_error() {
            CreateIdentityProviderError::ValidationException(e) => {
                let msg = e.message().unwrap();
                assert!(
                    msg.contains("IAM_Identity_Center") && msg.contains(arn),
                    "{msg}"
                );
                assert!(!msg.contains(CANARY));
            }
            other => panic!("expected ValidationException, got {other:?}"),
        }
    }
    assert_eq!(emu.counters().created("CreateIdentityProvider"), 0);
    // A Standard portal still takes one.
    client
        .create_identity_provider()
        .portal_arn(&standard)
        .identity_provider_name("corp-oidc")
        .identity_provider_type(IdentityProviderType::Oidc)
        .set_identity_provider_details(Some(oidc_details()))
        .send()
        .await
        .expect("a Standard portal takes a provider");
}

#[tokio::test]
async fn a_seeded_identity_center_portal_with_providers_is_refused_at_start() {
    let member = AccountConfig::new(MEMBER)
        .with_identity_center_portal(CENTER_PORTAL)
        .with_portal_provider(CENTER_PORTAL, seeded_oidc("corp"));
    let err = identity_emulator::start(fast_config().with_account(member), "127.0.0.1:0")
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("takes no identity providers"),
        "{err}"
    );
}
