//! Fault injection and counters: throttling and lost responses are survived by retrying
//! with the same ClientToken; concurrency never creates duplicates.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_ssoadmin::operation::create_instance::CreateInstanceError;
use aws_sdk_workspacesweb::operation::create_identity_provider::CreateIdentityProviderError;
use aws_sdk_workspacesweb::types::IdentityProviderType;
use common::*;
use identity_emulator::{FaultConfig, FaultRule};

fn rule(f: impl FnOnce(&mut FaultRule)) -> FaultRule {
    let mut r = FaultRule::default();
    f(&mut r);
    r
}

fn instances_of(emu: &identity_emulator::Emulator, account: &str) -> Vec<String> {
    emu.state()["accounts"][account]["instances"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["instance_arn"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_throttled_create_is_retried_by_the_sdk_and_creates_one_resource() {
    let emu = start(fast_config()).await;
    let client = sso(&assumed(&emu, MEMBER).await);
    emu.set_faults(FaultConfig::new(1).with_rule(
        "CreateInstance",
        rule(|r| {
            r.throttle_rate = 1.0;
            r.max_faults = Some(2);
        }),
    ));
    let out = client
        .create_instance()
        .client_token("t-1")
        .send()
        .await
        .expect("retried");
    let counters = emu.counters();
    assert_eq!(counters.calls("CreateInstance"), 3);
    assert_eq!(counters.faults("CreateInstance").throttled, 2);
    assert_eq!(counters.created("CreateInstance"), 1);
    assert_eq!(instances_of(&emu, MEMBER), vec![out.instance_arn.unwrap()]);
}

#[tokio::test]
async fn throttling_arrives_typed_when_retries_run_out() {
    let emu = start(fast_config()).await;
    let config = assumed_with_attempts(&emu, MEMBER, 1).await;
    let client = web(&config);
    let portal = client.create_portal().send().await.unwrap().portal_arn;
    emu.set_faults(FaultConfig::new(1).with_rule("*", rule(|r| r.throttle_rate = 1.0)));
    let err = client
        .create_identity_provider()
        .portal_arn(portal)
        .identity_provider_name("corp")
        .identity_provider_type(IdentityProviderType::Saml)
        .identity_provider_details("MetadataURL", "https://idp.example.com/m")
        .send()
        .await
        .unwrap_err();
    let retry_after = err
        .raw_response()
        .and_then(|r| r.headers().get("retry-after"))
        .map(str::to_string);
    assert_eq!(retry_after.as_deref(), Some("1"));
    match err.into_service_error() {
        CreateIdentityProviderError::ThrottlingException(e) => {
            assert_eq!(e.message(), Some("Rate exceeded"))
        }
        other => panic!("expected ThrottlingException, got {other:?}"),
    }
    let sso_err = sso(&config)
        .create_instance()
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(sso_err, CreateInstanceError::ThrottlingException(_)),
        "{sso_err:?}"
    );
}

#[tokio::test]
async fn commit_then_fail_and_an_sdk_retry_return_the_same_arn() {
    for drop_connection in [false, true] {
        let emu = start(fast_config()).await;
        let client = sso(&assumed(&emu, MEMBER).await);
        emu.set_faults(FaultConfig::new(3).with_rule(
            "CreateInstance",
            rule(|r| {
                if drop_connection {
                    r.commit_then_drop_rate = 1.0;
                } else {
                    r.commit_then_fail_rate = 1.0;
                }
                r.max_faults = Some(1);
            }),
        ));
        // no explicit token: the SDK's own token is reused across its retries
        let out = client.create_instance().send().await.expect("retried");
        let arn = out.instance_arn.unwrap();
        assert_eq!(
            instances_of(&emu, MEMBER),
            vec![arn.clone()],
            "drop={drop_connection}"
        );
        let counters = emu.counters();
        assert_eq!(counters.created("CreateInstance"), 1);
        assert_eq!(counters.returned_existing("CreateInstance"), 1);
        let faults = counters.faults("CreateInstance");
        assert_eq!(faults.commit_then_fail + faults.commit_then_drop, 1);
    }
}

#[tokio::test]
async fn a_lost_response_is_recovered_by_calling_again_with_the_same_token() {
    let emu = start(fast_config()).await;
    let client = sso(&assumed_with_attempts(&emu, MEMBER, 1).await);
    emu.set_faults(FaultConfig::new(5).with_rule(
        "CreateInstance",
        rule(|r| {
            r.commit_then_fail_rate = 1.0;
            r.max_faults = Some(1);
        }),
    ));
    let err = client
        .create_instance()
        .client_token("step-key")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        CreateInstanceError::InternalServerException(_)
    ));
    let committed = instances_of(&emu, MEMBER);
    assert_eq!(
        committed.len(),
        1,
        "the create committed although the client saw a 500"
    );

    let again = client
        .create_instance()
        .client_token("step-key")
        .send()
        .await
        .unwrap();
    assert_eq!(again.instance_arn.unwrap(), committed[0]);
    assert_eq!(emu.counters().created("CreateInstance"), 1);
}

#[tokio::test]
async fn latency_is_added() {
    let emu = start(fast_config()).await;
    let client = sso(&management(&emu));
    emu.set_faults(FaultConfig::new(0).with_rule("ListInstances", rule(|r| r.latency_ms = 200)));
    let t = Instant::now();
    client.list_instances().send().await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn fifty_concurrent_identical_creates_make_one_resource() {
    let emu = start(fast_config()).await;
    let client = web(&assumed(&emu, MEMBER).await);
    let portal = client.create_portal().send().await.unwrap().portal_arn;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let client = client.clone();
        let portal = portal.clone();
        tasks.push(tokio::spawn(async move {
            client
                .create_identity_provider()
                .portal_arn(portal)
                .identity_provider_name("corp")
                .identity_provider_type(IdentityProviderType::Saml)
                .identity_provider_details("MetadataURL", "https://idp.example.com/m")
                .client_token("same-step")
                .send()
                .await
                .map(|o| o.identity_provider_arn)
        }));
    }
    let mut arns = Vec::new();
    for t in tasks {
        arns.push(t.await.unwrap().expect("create"));
    }
    arns.dedup();
    assert_eq!(arns.len(), 1);
    let counters = emu.counters();
    assert_eq!(counters.created("CreateIdentityProvider"), 1);
    assert_eq!(counters.returned_existing("CreateIdentityProvider"), 49);
    assert_eq!(counters.calls("CreateIdentityProvider"), 50);
}

#[tokio::test]
async fn fifty_concurrent_creates_with_distinct_tokens_make_one_instance() {
    let emu = start(fast_config()).await;
    let client = sso(&assumed(&emu, MEMBER).await);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client
                .create_instance()
                .client_token(format!("t{i}"))
                .send()
                .await
        }));
    }
    let (mut ok, mut conflicts) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => match e.into_service_error() {
                CreateInstanceError::ConflictException(_) => conflicts += 1,
                other => panic!("unexpected {other:?}"),
            },
        }
    }
    assert_eq!((ok, conflicts), (1, 49));
    assert_eq!(instances_of(&emu, MEMBER).len(), 1);
}

/// The fault pattern of 40 sequential calls.
async fn pattern(emu: &identity_emulator::Emulator, seed: u64) -> Vec<bool> {
    emu.reset();
    emu.set_faults(FaultConfig::new(seed).with_rule(
        "*",
        rule(|r| {
            r.throttle_rate = 0.3;
            r.server_error_rate = 0.2;
        }),
    ));
    let client = sso(&sdk_config_with(
        emu,
        aws_credential_types::Credentials::new("AKIATEST", "s", None, None, "t"),
        1,
    ));
    let mut out = Vec::new();
    for _ in 0..40 {
        out.push(client.list_instances().send().await.is_ok());
    }
    out
}

#[tokio::test]
async fn the_same_seed_reproduces_the_same_faults() {
    let emu = start(fast_config()).await;
    let a = pattern(&emu, 42).await;
    let b = pattern(&emu, 42).await;
    let c = pattern(&emu, 43).await;
    assert_eq!(a, b);
    assert_ne!(a, c);
    let failures = a.iter().filter(|ok| !**ok).count();
    assert!((8..=32).contains(&failures), "{failures} of 40 failed");
    let faults = emu.counters().faults("ListInstances");
    assert_eq!(
        (faults.throttled + faults.server_errors) as usize,
        c.iter().filter(|ok| !**ok).count()
    );
}

#[tokio::test]
async fn admin_api_sets_faults_and_reports_counters_and_state() {
    let emu = start(fast_config()).await;
    let faults = r#"{"seed": 9, "rules": {"DescribeInstance": {"server_error_rate": 1.0, "max_faults": 1}}}"#;
    let (status, body) = raw(&emu, "POST", "/_emulator/faults", &[], faults.as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = raw(&emu, "GET", "/_emulator/faults", &[], b"").await;
    assert_eq!(status, 200);
    assert!(body.contains("DescribeInstance"));

    let client = sso(&sdk_config_with(
        &emu,
        aws_credential_types::Credentials::new("AKIATEST", "s", None, None, "t"),
        1,
    ));
    let org = emu.config().organization_instance_arn().to_string();
    assert!(client
        .describe_instance()
        .instance_arn(&org)
        .send()
        .await
        .is_err());
    client
        .describe_instance()
        .instance_arn(&org)
        .send()
        .await
        .expect("fault used up");

    let (status, body) = raw(&emu, "GET", "/_emulator/counters", &[], b"").await;
    assert_eq!(status, 200);
    let counters: identity_emulator::Counters = serde_json::from_str(&body).unwrap();
    assert_eq!(counters.calls("DescribeInstance"), 2);
    assert_eq!(counters.faults("DescribeInstance").server_errors, 1);

    let (status, body) = raw(&emu, "GET", "/_emulator/state", &[], b"").await;
    assert_eq!(status, 200);
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        state["accounts"][MANAGEMENT]["instances"][0]["instance_arn"],
        org
    );

    let (status, _) = raw(&emu, "POST", "/_emulator/reset", &[], b"").await;
    assert_eq!(status, 200);
    assert_eq!(emu.counters(), identity_emulator::Counters::default());

    let (status, body) = raw(
        &emu,
        "POST",
        "/_emulator/faults",
        &[],
        br#"{"rules": {"*": {"throttle_rate": 2}}}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = raw(&emu, "POST", "/_emulator/faults", &[], b"{not json").await;
    assert_eq!(status, 400);
    let (status, _) = raw(&emu, "GET", "/_emulator/nothing", &[], b"").await;
    assert_eq!(status, 404);
    let (status, _) = raw(&emu, "DELETE", "/_emulator/state", &[], b"").await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn injected_conflicts_create_nothing_and_are_counted() {
    let emu = start(fast_config()).await;
    let config = assumed(&emu, MEMBER).await;
    let client = sso(&config);
    emu.set_faults(FaultConfig::new(11).with_rule(
        "CreateInstance",
        rule(|r| {
            r.conflict_rate = 1.0;
            r.max_faults = Some(1);
        }),
    ));
    let err = client
        .create_instance()
        .client_token("step")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(409));
    match err.into_service_error() {
        CreateInstanceError::ConflictException(e) => {
            let msg = e.message().unwrap();
            assert!(
                msg.contains("concurrent operation") && msg.contains("retry"),
                "{msg}"
            );
        }
        other => panic!("expected ConflictException, got {other:?}"),
    }
    // the SDK does not retry a Conflict; nothing was created
    let counters = emu.counters();
    assert_eq!(counters.calls("CreateInstance"), 1);
    assert_eq!(counters.faults("CreateInstance").conflicts, 1);
    assert_eq!(counters.created("CreateInstance"), 0);
    assert!(instances_of(&emu, MEMBER).is_empty());

    // retrying with the same token creates it: the conflict remembered nothing
    let out = client
        .create_instance()
        .client_token("step")
        .send()
        .await
        .expect("retry");
    assert_eq!(instances_of(&emu, MEMBER), vec![out.instance_arn.unwrap()]);
    assert_eq!(emu.counters().created("CreateInstance"), 1);

    // a "*" rule conflicts writes of every service, never reads
    emu.set_faults(FaultConfig::new(12).with_rule("*", rule(|r| r.conflict_rate = 1.0)));
    client
        .list_instances()
        .send()
        .await
        .expect("reads unaffected");
    let web_client = web(&config);
    let err = web_client
        .create_portal()
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            err,
            aws_sdk_workspacesweb::operation::create_portal::CreatePortalError::ConflictException(
                _
            )
        ),
        "{err:?}"
    );
    let counters = emu.counters();
    assert_eq!(counters.faults("CreatePortal").conflicts, 1);
    assert_eq!(counters.faults("ListInstances").conflicts, 0);
    assert_eq!(counters.created("CreatePortal"), 0);

    // and the admin API takes the field
    let (status, body) = raw(
        &emu,
        "POST",
        "/_emulator/faults",
        &[],
        br#"{"rules": {"CreateIdentityProvider": {"conflict_rate": 0.5, "throttle_rate": 0.6}}}"#,
    )
    .await;
    assert_eq!(status, 400, "rates add up to more than 1: {body}");
}

#[tokio::test]
async fn forgotten_tokens_make_an_old_retry_a_new_request() {
    let emu = start(fast_config()).await;
    let member = assumed(&emu, MEMBER).await;

    // SSO Admin: the account already has the instance -> Conflict
    let sso_client = sso(&member);
    let arn = sso_client
        .create_instance()
        .client_token("instance-step")
        .send()
        .await
        .unwrap()
        .instance_arn
        .unwrap();
    // WorkSpaces Web: a provider of that name is on the portal -> Conflict
    let web_client = web(&member);
    let portal = web_client
        .create_portal()
        .client_token("portal-step")
        .send()
        .await
        .unwrap()
        .portal_arn;
    let provider = || {
        web_client
            .create_identity_provider()
            .portal_arn(&portal)
            .identity_provider_name("corp")
            .identity_provider_type(IdentityProviderType::Saml)
            .identity_provider_details("MetadataURL", "https://idp.example.com/m")
            .client_token("provider-step")
            .send()
    };
    let provider_arn = provider().await.unwrap().identity_provider_arn;
    // MPA: the organization has its identity source -> ServiceQuotaExceeded
    let org = emu.config().organization_instance_arn().to_string();
    let mpa_client = mpa(&management(&emu));
    let source = || {
        mpa_client
            .create_identity_source()
            .identity_source_parameters(
                aws_sdk_mpa::types::IdentitySourceParameters::builder()
                    .iam_identity_center(
                        aws_sdk_mpa::types::IamIdentityCenter::builder()
                            .instance_arn(&org)
                            .region("us-east-1")
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .client_token("source-step")
            .send()
    };
    let source_arn = source().await.unwrap().identity_source_arn.unwrap();

    // remembered: replays
    assert_eq!(
        sso_client
            .create_instance()
            .client_token("instance-step")
            .send()
            .await
            .unwrap()
            .instance_arn
            .unwrap(),
        arn
    );
    assert_eq!(
        provider().await.unwrap().identity_provider_arn,
        provider_arn
    );
    assert_eq!(
        source().await.unwrap().identity_source_arn.unwrap(),
        source_arn
    );

    emu.forget_tokens();
    let err = sso_client
        .create_instance()
        .client_token("instance-step")
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
    let err = provider().await.unwrap_err().into_service_error();
    match err {
        CreateIdentityProviderError::ConflictException(e) => {
            assert_eq!(e.resource_id(), Some(provider_arn.as_str()))
        }
        other => panic!("expected ConflictException, got {other:?}"),
    }
    let err = source().await.unwrap_err().into_service_error();
    assert!(
        matches!(
            err,
            aws_sdk_mpa::operation::create_identity_source::CreateIdentitySourceError::ServiceQuotaExceededException(_)
        ),
        "{err:?}"
    );
    // resources stay, none was added
    let counters = emu.counters();
    assert_eq!(counters.created("CreateInstance"), 1);
    assert_eq!(counters.created("CreateIdentityProvider"), 1);
    assert_eq!(counters.created("CreateIdentitySource"), 1);
    assert_eq!(instances_of(&emu, MEMBER), vec![arn.clone()]);

    // the admin endpoint does the same: a portal create with its old token is new again
    let (status, body) = raw(&emu, "POST", "/_emulator/forget-tokens", &[], b"").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = raw(&emu, "GET", "/_emulator/forget-tokens", &[], b"").await;
    assert_eq!(status, 405);
    let again = web_client
        .create_portal()
        .client_token("portal-step")
        .send()
        .await
        .unwrap()
        .portal_arn;
    assert_ne!(again, portal);
    assert_eq!(emu.counters().created("CreatePortal"), 2);
}
