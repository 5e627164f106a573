//! Request-rate quotas through the real SDK clients: token buckets per operation, metered
//! per calling account, per organization or for everyone, answered with each service's own
//! throttling error, refilled over time; off unless configured.

mod common;

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_mpa::operation::create_identity_source::CreateIdentitySourceError;
use aws_sdk_mpa::types::{IamIdentityCenter, IdentitySourceParameters};
use aws_sdk_ssoadmin::operation::create_instance::CreateInstanceError;
use aws_sdk_ssoadmin::operation::list_instances::ListInstancesError;
use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_sdk_workspacesweb::operation::create_portal::CreatePortalError;
use common::*;
use identity_emulator::{
    Config, Counters, Emulator, FaultConfig, FaultRule, QuotaConfig, QuotaRule, QuotaScope,
};

const OTHER: &str = "333333333333";

fn only(operation: &str, rule: QuotaRule) -> Option<QuotaConfig> {
    Some(QuotaConfig::new().with_rule(operation, rule))
}

fn params(instance_arn: &str) -> IdentitySourceParameters {
    IdentitySourceParameters::builder()
        .iam_identity_center(
            IamIdentityCenter::builder()
                .instance_arn(instance_arn)
                .region("us-east-1")
                .build()
                .unwrap(),
        )
        .build()
}

fn count_in_state(emu: &Emulator, account: &str, kind: &str) -> usize {
    emu.state()["accounts"][account][kind]
        .as_array()
        .map_or(0, Vec::len)
}

/// `ListInstances` from `client`: Ok, or the typed throttling error (anything else fails).
async fn list_instances(client: &aws_sdk_ssoadmin::Client) -> Result<(), ()> {
    match client.list_instances().send().await {
        Ok(_) => Ok(()),
        Err(err) => match err.into_service_error() {
            ListInstancesError::ThrottlingException(_) => Err(()),
            other => panic!("expected ThrottlingException, got {other:?}"),
        },
    }
}

/// `ListIdentitySources` from `client`: Ok, or throttled (`ThrottlingException`, 429).
async fn list_sources(client: &aws_sdk_mpa::Client) -> Result<(), ()> {
    match client.list_identity_sources().send().await {
        Ok(_) => Ok(()),
        Err(err) => {
            assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(429));
            assert_eq!(err.code(), Some("ThrottlingException"), "{err:?}");
            Err(())
        }
    }
}

/// `GetCallerIdentity` from `client`: Ok, or throttled (STS `Throttling`, 400).
async fn caller_identity(client: &aws_sdk_sts::Client) -> Result<(), ()> {
    match client.get_caller_identity().send().await {
        Ok(_) => Ok(()),
        Err(err) => {
            assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
            assert_eq!(err.code(), Some("Throttling"), "{err:?}");
            Err(())
        }
    }
}

#[tokio::test]
async fn quotas_are_off_by_default() {
    assert_eq!(Config::default().quotas, None);
    assert_eq!(Config::from_json("{}").unwrap().quotas, None);
    let emu = start(fast_config()).await;
    assert_eq!(emu.quotas(), None);
    let config = management_once(&emu);
    let (sso_client, sts_client) = (sso(&config), sts(&config));
    // far beyond every default burst, as fast as eight clients can go
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (s, t) = (sso_client.clone(), sts_client.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..40 {
                s.list_instances().send().await.expect("never throttled");
                t.get_caller_identity()
                    .send()
                    .await
                    .expect("never throttled");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let counters = emu.counters();
    assert_eq!(counters.calls("ListInstances"), 320);
    assert_eq!(counters.throttled("ListInstances"), 0);
    assert!(counters.throttled.is_empty());
    let (status, body) = raw(&emu, "GET", "/_emulator/quotas", &[], b"").await;
    assert_eq!((status, body.trim()), (200, "null"));
}

#[tokio::test]
async fn sso_admin_answers_a_typed_429_beyond_the_bucket_and_a_throttled_create_does_nothing() {
    let emu = start(fast_config()).await;
    let client = sso(&assumed_with_attempts(&emu, MEMBER, 1).await);
    emu.set_quotas(Some(
        QuotaConfig::new()
            .with_rule("ListInstances", QuotaRule::per_account(0.0, 3))
            .with_rule("CreateInstance", QuotaRule::per_account(0.0, 1)),
    ));
    for _ in 0..3 {
        client
            .list_instances()
            .send()
            .await
            .expect("within the burst");
    }
    let err = client.list_instances().send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(429));
    match err.into_service_error() {
        ListInstancesError::ThrottlingException(e) => {
            assert_eq!(e.message(), Some("Rate exceeded"))
        }
        other => panic!("expected ThrottlingException, got {other:?}"),
    }

    // the create bucket's one token goes to a call the model refuses ...
    let err = client
        .create_instance()
        .name("has space")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, CreateInstanceError::ValidationException(_)),
        "{err:?}"
    );
    // ... so the next one is throttled, and creates and remembers nothing
    let err = client
        .create_instance()
        .client_token("instance-step")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(429));
    assert!(matches!(
        err.into_service_error(),
        CreateInstanceError::ThrottlingException(_)
    ));
    let counters = emu.counters();
    assert_eq!(counters.throttled("CreateInstance"), 1);
    assert_eq!(counters.throttled("ListInstances"), 1);
    assert_eq!(counters.calls("CreateInstance"), 2);
    assert_eq!(counters.created("CreateInstance"), 0);
    assert_eq!(count_in_state(&emu, MEMBER, "instances"), 0);

    // the same token later is a first call: created, not a replay
    emu.set_quotas(None);
    client
        .create_instance()
        .client_token("instance-step")
        .send()
        .await
        .expect("no quota now");
    let counters = emu.counters();
    assert_eq!(counters.created("CreateInstance"), 1);
    assert_eq!(counters.returned_existing("CreateInstance"), 0);
}

#[tokio::test]
async fn mpa_meters_the_organization_and_a_throttled_create_does_nothing() {
    let emu = start(fast_config()).await;
    let member = assumed_with_attempts(&emu, MEMBER, 1).await;
    let management = mpa(&management_once(&emu));
    let org = emu.config().organization_instance_arn().to_string();
    emu.set_quotas(only(
        "CreateIdentitySource",
        QuotaRule::per_organization(0.0, 1),
    ));
    // a member account's create is refused, and takes the organization's only token
    let err = mpa(&member)
        .create_identity_source()
        .identity_source_parameters(params(&org))
        .client_token("source-step")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, CreateIdentitySourceError::AccessDeniedException(_)),
        "{err:?}"
    );
    let create = || {
        management
            .create_identity_source()
            .identity_source_parameters(params(&org))
            .client_token("source-step")
            .send()
    };
    let err = create().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(429));
    match err.into_service_error() {
        CreateIdentitySourceError::ThrottlingException(e) => {
            assert_eq!(e.message(), "Rate exceeded")
        }
        other => panic!("expected ThrottlingException, got {other:?}"),
    }
    let counters = emu.counters();
    assert_eq!(counters.throttled("CreateIdentitySource"), 1);
    assert_eq!(counters.created("CreateIdentitySource"), 0);
    assert_eq!(count_in_state(&emu, MANAGEMENT, "identity_sources"), 0);

    emu.set_quotas(None);
    create().await.expect("no quota now");
    let counters = emu.counters();
    assert_eq!(counters.created("CreateIdentitySource"), 1);
    assert_eq!(counters.returned_existing("CreateIdentitySource"), 0);
}

#[tokio::test]
async fn workspaces_web_throttling_is_a_typed_429_with_retry_after() {
    let emu = start(fast_config()).await;
    let client = web(&assumed_with_attempts(&emu, MEMBER, 1).await);
    emu.set_quotas(only("CreatePortal", QuotaRule::per_account(0.0, 2)));
    for token in ["first", "second"] {
        client
            .create_portal()
            .client_token(token)
            .send()
            .await
            .expect("within the burst");
    }
    let err = client
        .create_portal()
        .client_token("third")
        .send()
        .await
        .unwrap_err();
    let raw_response = err.raw_response().expect("a response");
    assert_eq!(raw_response.status().as_u16(), 429);
    assert_eq!(raw_response.headers().get("retry-after"), Some("1"));
    match err.into_service_error() {
        CreatePortalError::ThrottlingException(e) => {
            assert_eq!(e.message(), Some("Rate exceeded"))
        }
        other => panic!("expected ThrottlingException, got {other:?}"),
    }
    assert_eq!(emu.counters().created("CreatePortal"), 2);
    assert_eq!(count_in_state(&emu, MEMBER, "portals"), 2);
}

#[tokio::test]
async fn sts_throttling_is_a_400_throttling_in_the_query_error_shape() {
    let emu = start(fast_config()).await;
    let client = sts(&management_once(&emu));
    emu.set_quotas(only("AssumeRole", QuotaRule::per_account(0.0, 2)));
    for account in [MEMBER, OTHER] {
        client
            .assume_role()
            .role_arn(format!("arn:aws:iam::{account}:role/{ROLE}"))
            .role_session_name("within")
            .send()
            .await
            .expect("within the burst");
    }
    let err = client
        .assume_role()
        .role_arn(format!("arn:aws:iam::444444444444:role/{ROLE}"))
        .role_session_name("beyond")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert_eq!(err.code(), Some("Throttling"));
    assert_eq!(err.message(), Some("Rate exceeded"));
    assert_eq!(emu.counters().throttled("AssumeRole"), 1);
    assert_eq!(emu.state()["sessions"], 2, "no session issued");
}

/// `(operation, method, path, headers, body)` of a raw request.
type RawRequest = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [u8],
);

/// One request per service, throttled once by a quota and once by an injected fault: the
/// same status, headers and body (request ids aside).
#[tokio::test]
async fn a_quota_throttle_is_exactly_the_injected_throttle_of_each_protocol() {
    let requests: [RawRequest; 4] = [
        (
            "ListInstances",
            "POST",
            "/",
            &[
                ("X-Amz-Target", "SWBExternalService.ListInstances"),
                ("Content-Type", "application/x-amz-json-1.1"),
            ],
            b"{}",
        ),
        (
            "ListIdentitySources",
            "POST",
            "/identity-sources?List",
            &[("Content-Type", "application/json")],
            b"{}",
        ),
        (
            "CreatePortal",
            "POST",
            "/portals",
            &[("Content-Type", "application/json")],
            b"{}",
        ),
        (
            "GetCallerIdentity",
            "POST",
            "/",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"Action=GetCallerIdentity&Version=2011-06-15",
        ),
    ];
    let emu = start(fast_config()).await;
    for (operation, method, path, headers, body) in requests {
        let send = || raw_with_headers(&emu, method, path, headers, body);
        let normalized = |(status, headers, body): (u16, Vec<(String, String)>, String)| {
            let id = headers
                .iter()
                .find(|(k, _)| k == "x-amzn-requestid")
                .map(|(_, v)| v.clone())
                .expect("a request id");
            let mut kept: Vec<(String, String)> = headers
                .into_iter()
                .filter(|(k, _)| {
                    !["date", "x-amzn-requestid", "x-amz-request-id"].contains(&k.as_str())
                })
                .collect();
            kept.sort();
            (status, kept, body.replace(&id, "<id>"))
        };

        emu.reset();
        emu.set_quotas(only(operation, QuotaRule::global(0.0, 1)));
        let (status, _, _) = send().await;
        assert!(status < 300, "{operation}: the first call is admitted");
        let by_quota = normalized(send().await);

        emu.reset();
        emu.set_faults(FaultConfig::new(1).with_rule(
            operation,
            FaultRule {
                throttle_rate: 1.0,
                ..FaultRule::default()
            },
        ));
        let by_fault = normalized(send().await);
        assert_eq!(by_quota, by_fault, "{operation}");
        assert!(
            by_quota.2.contains("Rate exceeded"),
            "{operation}: {by_quota:?}"
        );
        let code = if operation == "GetCallerIdentity" {
            "Throttling"
        } else {
            "ThrottlingException"
        };
        assert!(
            by_quota
                .1
                .contains(&("x-amzn-errortype".to_string(), code.to_string())),
            "{operation}: {by_quota:?}"
        );
        match operation {
            "GetCallerIdentity" => {
                assert_eq!(by_quota.0, 400);
                assert!(
                    by_quota.2.contains(
                        "<Error><Type>Sender</Type><Code>Throttling</Code>\
                         <Message>Rate exceeded</Message></Error>"
                    ),
                    "{}",
                    by_quota.2
                );
            }
            "CreatePortal" => {
                assert_eq!(by_quota.0, 429);
                assert!(by_quota.1.contains(&("retry-after".into(), "1".into())));
            }
            _ => assert_eq!(by_quota.0, 429),
        }
    }
}

#[tokio::test]
async fn each_calling_account_has_its_own_bucket() {
    let emu = start(fast_config()).await;
    let member = assumed_with_attempts(&emu, MEMBER, 1).await;
    let other = assumed_with_attempts(&emu, OTHER, 1).await;
    let management = management_once(&emu);
    emu.set_quotas(only("ListInstances", QuotaRule::per_account(0.0, 2)));
    for config in [&member, &other, &management] {
        let client = sso(config);
        assert_eq!(list_instances(&client).await, Ok(()));
        assert_eq!(list_instances(&client).await, Ok(()));
        assert_eq!(list_instances(&client).await, Err(()));
    }
    assert_eq!(emu.counters().throttled("ListInstances"), 3);

    // AssumeRole is metered against the calling account, whichever account it assumes into
    emu.set_quotas(only("AssumeRole", QuotaRule::per_account(0.0, 2)));
    let assume = |config: &aws_config::SdkConfig, into: &str| {
        sts(config)
            .assume_role()
            .role_arn(format!("arn:aws:iam::{into}:role/{ROLE}"))
            .role_session_name("backfill")
            .send()
    };
    assume(&management, "444444444444").await.expect("first");
    assume(&management, "555555555555").await.expect("second");
    let err = assume(&management, "666666666666").await.unwrap_err();
    assert_eq!(err.code(), Some("Throttling"));
    // a session in the member account calls from there: its own bucket
    assume(&member, "444444444444")
        .await
        .expect("the member account's bucket is full");
}

#[tokio::test]
async fn organization_and_global_scopes_share_one_bucket_across_accounts() {
    let emu = start(fast_config()).await;
    let member = assumed_with_attempts(&emu, MEMBER, 1).await;
    let other = assumed_with_attempts(&emu, OTHER, 1).await;
    let management = management_once(&emu);
    let (m, a, b) = (mpa(&management), mpa(&member), mpa(&other));

    emu.set_quotas(only(
        "ListIdentitySources",
        QuotaRule::new(0.0, 2, QuotaScope::Organization),
    ));
    assert_eq!(list_sources(&m).await, Ok(()));
    assert_eq!(list_sources(&a).await, Ok(()));
    assert_eq!(
        list_sources(&b).await,
        Err(()),
        "the organization's bucket is empty"
    );
    assert_eq!(list_sources(&m).await, Err(()));

    // the same rule per account: each account has its own
    emu.set_quotas(only("ListIdentitySources", QuotaRule::per_account(0.0, 1)));
    assert_eq!(list_sources(&m).await, Ok(()));
    assert_eq!(list_sources(&a).await, Ok(()));
    assert_eq!(list_sources(&b).await, Ok(()));
    assert_eq!(list_sources(&m).await, Err(()));

    // global: one bucket for everyone
    emu.set_quotas(only("GetCallerIdentity", QuotaRule::global(0.0, 2)));
    assert_eq!(caller_identity(&sts(&management)).await, Ok(()));
    assert_eq!(caller_identity(&sts(&member)).await, Ok(()));
    assert_eq!(caller_identity(&sts(&other)).await, Err(()));
    assert_eq!(emu.counters().throttled("ListIdentitySources"), 3);
    assert_eq!(emu.counters().throttled("GetCallerIdentity"), 1);
}

#[tokio::test]
async fn buckets_refill_at_their_rate_up_to_their_burst() {
    let emu = start(fast_config()).await;
    let client = sso(&management_once(&emu));
    let org = emu.config().organization_instance_arn().to_string();
    // a token every 500 ms, at most 3
    emu.set_quotas(only("DescribeInstance", QuotaRule::per_account(2.0, 3)));
    let describe = || async {
        client
            .describe_instance()
            .instance_arn(&org)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(429));
            })
    };
    let burst = Instant::now();
    for _ in 0..3 {
        assert_eq!(describe().await, Ok(()));
    }
    assert_eq!(describe().await, Err(()));
    assert!(
        burst.elapsed() < Duration::from_millis(450),
        "the burst took {:?}: too slow for this test's timing",
        burst.elapsed()
    );

    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(describe().await, Ok(()), "one token refilled");
    assert_eq!(describe().await, Err(()), "only one");

    // a long pause refills up to the burst, not beyond
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for _ in 0..3 {
        assert_eq!(describe().await, Ok(()));
    }
    assert_eq!(describe().await, Err(()));
    assert_eq!(emu.counters().throttled("DescribeInstance"), 3);
}

#[tokio::test]
async fn concurrent_calls_never_get_more_than_the_bucket() {
    let emu = start(fast_config()).await;
    let client = web(&assumed_with_attempts(&emu, MEMBER, 1).await);
    emu.set_quotas(only("*", QuotaRule::per_account(0.0, 10)));
    let portal =
        "arn:aws:workspaces-web:us-east-1:222222222222:portal/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b";
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client
                .list_identity_providers()
                .portal_arn(portal)
                .send()
                .await
                .map_err(|e| e.into_service_error())
        }));
    }
    let (mut ok, mut throttled) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) if e.is_throttling_exception() => throttled += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, throttled), (10, 40));
    let counters = emu.counters();
    assert_eq!(counters.calls("ListIdentityProviders"), 50);
    assert_eq!(counters.throttled("ListIdentityProviders"), 40);
}

#[tokio::test]
async fn sdk_retries_of_a_throttled_call_are_calls_too() {
    let emu = start(fast_config()).await;
    let client = sso(&management(&emu)); // 3 attempts, as the SDK's default
    emu.set_quotas(only("ListInstances", QuotaRule::per_account(0.0, 1)));
    client.list_instances().send().await.expect("the one token");
    let err = client.list_instances().send().await.unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        ListInstancesError::ThrottlingException(_)
    ));
    let counters = emu.counters();
    assert_eq!(counters.calls("ListInstances"), 4);
    assert_eq!(counters.throttled("ListInstances"), 3);
}

#[tokio::test]
async fn counters_report_throttled_calls_and_the_window_of_each_operation() {
    let emu = start(fast_config()).await;
    let client = sso(&management_once(&emu));
    assert_eq!(emu.counters().window("ListInstances"), None);
    emu.set_quotas(only("ListInstances", QuotaRule::per_account(0.0, 5)));
    let before = SystemTime::now();
    for _ in 0..8 {
        let _ = client.list_instances().send().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = SystemTime::now();
    let counters = emu.counters();
    assert_eq!(counters.calls("ListInstances"), 8);
    assert_eq!(counters.throttled("ListInstances"), 3);
    assert_eq!(
        counters.faults("ListInstances").throttled,
        0,
        "quota throttles are not injected faults"
    );
    let (first, last) = counters.window("ListInstances").expect("a window");
    // recorded to the microsecond
    assert!(
        before - Duration::from_micros(1) <= first,
        "{before:?} {first:?}"
    );
    assert!(last <= after);
    assert!(last.duration_since(first).unwrap() >= Duration::from_millis(70));
    assert_eq!(
        counters.windows["ListInstances"].span(),
        last.duration_since(first).unwrap()
    );

    // the admin API shows the same, and it reads back equal
    let (status, body) = raw(&emu, "GET", "/_emulator/counters", &[], b"").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["throttled"]["ListInstances"], 3);
    let window = &json["windows"]["ListInstances"];
    assert!(window["first"].as_str().unwrap().ends_with('Z'), "{window}");
    assert!(
        window["last_unix_micros"].as_u64().unwrap()
            >= window["first_unix_micros"].as_u64().unwrap()
    );
    let read_back: Counters = serde_json::from_str(&body).unwrap();
    assert_eq!(read_back, emu.counters());

    emu.reset();
    assert_eq!(emu.counters().window("ListInstances"), None);
    assert_eq!(emu.counters().throttled("ListInstances"), 0);
}

#[tokio::test]
async fn a_quota_throttle_draws_no_fault_and_takes_the_rule_latency() {
    let emu = start(fast_config()).await;
    let client = sso(&management_once(&emu));
    emu.set_faults(FaultConfig::new(1).with_rule(
        "ListInstances",
        FaultRule {
            throttle_rate: 1.0,
            latency_ms: 150,
            ..FaultRule::default()
        },
    ));
    emu.set_quotas(only("ListInstances", QuotaRule::per_account(0.0, 1)));
    // admitted (takes the token), then throttled by the injected fault
    assert_eq!(list_instances(&client).await, Err(()));
    // no token: throttled by the quota, after the rule's latency, with no fault drawn
    let t = Instant::now();
    assert_eq!(list_instances(&client).await, Err(()));
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    let counters = emu.counters();
    assert_eq!(counters.calls("ListInstances"), 2);
    assert_eq!(counters.faults("ListInstances").throttled, 1);
    assert_eq!(counters.throttled("ListInstances"), 1);
}

#[tokio::test]
async fn the_admin_endpoint_sets_reads_and_clears_quotas_and_reset_restores_the_configured_ones() {
    let configured = QuotaConfig::new().with_rule("GetCallerIdentity", QuotaRule::global(0.0, 1));
    let emu = start(fast_config().with_quotas(configured.clone())).await;
    let client = sts(&management_once(&emu));
    assert_eq!(emu.quotas(), Some(configured.clone()));
    assert_eq!(caller_identity(&client).await, Ok(()));
    assert_eq!(caller_identity(&client).await, Err(()));

    let post = |body: &'static str| raw(&emu, "POST", "/_emulator/quotas", &[], body.as_bytes());
    let (status, body) = post(
        r#"{"rules": {"GetCallerIdentity": {"rate_per_second": 0, "burst": 2, "scope": "Account"}}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let expected =
        QuotaConfig::new().with_rule("GetCallerIdentity", QuotaRule::per_account(0.0, 2));
    assert_eq!(
        serde_json::from_str::<QuotaConfig>(&body).unwrap(),
        expected
    );
    assert_eq!(emu.quotas(), Some(expected.clone()));
    let (status, body) = raw(&emu, "GET", "/_emulator/quotas", &[], b"").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<QuotaConfig>(&body).unwrap(),
        expected
    );
    // new quotas start with full buckets
    assert_eq!(caller_identity(&client).await, Ok(()));
    assert_eq!(caller_identity(&client).await, Ok(()));
    assert_eq!(caller_identity(&client).await, Err(()));

    // null turns them off
    let (status, body) = post("null").await;
    assert_eq!((status, body.trim()), (200, "null"));
    assert_eq!(emu.quotas(), None);
    for _ in 0..10 {
        assert_eq!(caller_identity(&client).await, Ok(()));
    }
    // "documented" is the default table; an empty body is off again
    let (status, _) = post(r#""documented""#).await;
    assert_eq!(status, 200);
    assert_eq!(emu.quotas(), Some(QuotaConfig::documented()));
    let (status, _) = post("").await;
    assert_eq!(status, 200);
    assert_eq!(emu.quotas(), None);

    for (bad, needle) in [
        (
            r#"{"rules": {"GetCallerIdentitty": {"rate_per_second": 1, "burst": 1}}}"#,
            "GetCallerIdentitty",
        ),
        (
            r#"{"rules": {"*": {"rate_per_second": 1, "burst": 0}}}"#,
            "burst",
        ),
        (
            r#"{"rules": {"*": {"rate_per_second": -1, "burst": 1}}}"#,
            "rate_per_second",
        ),
        (
            r#"{"rules": {"*": {"rate_per_second": 1, "burst": 1, "scope": "Planet"}}}"#,
            "Planet",
        ),
        (r#"{"rulez": {}}"#, "rulez"),
        (r#""lavish""#, "lavish"),
        ("{not json", "invalid quota config"),
    ] {
        let (status, body) = post(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains(needle), "{bad}: {body}");
    }
    assert_eq!(emu.quotas(), None, "a refused config changes nothing");
    let (status, _) = raw(&emu, "DELETE", "/_emulator/quotas", &[], b"").await;
    assert_eq!(status, 405);

    // reset goes back to the configured quotas, buckets full
    emu.set_quotas(None);
    emu.reset();
    assert_eq!(emu.quotas(), Some(configured));
    assert_eq!(caller_identity(&client).await, Ok(()));
    assert_eq!(caller_identity(&client).await, Err(()));
}

#[tokio::test]
async fn documented_quotas_from_a_config_file_throttle_a_burst_beyond_twenty_per_second() {
    let config = Config::from_json(r#"{"instance_activation_ms": 150, "quotas": "documented"}"#)
        .expect("valid");
    assert_eq!(config.quotas, Some(QuotaConfig::documented()));
    let bad = Config::from_json(
        r#"{"quotas": {"rules": {"CreateInstance": {"rate_per_second": 1, "burst": 0}}}}"#,
    );
    assert!(bad.unwrap_err().contains("quotas"));

    let emu = start(config).await;
    let client = sso(&management_once(&emu));
    // 60 at once against IAM Identity Center's 20 per second (burst 20): only a spread over
    // two seconds would let them all through
    let mut tasks = Vec::new();
    for _ in 0..60 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move { list_instances(&client).await }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    assert!((20..60).contains(&ok), "{ok} of 60 admitted");
    assert_eq!(emu.counters().throttled("ListInstances"), 60 - ok);
}
