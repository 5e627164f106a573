//! STS through the real `aws-sdk-sts` client and `aws_config`'s AssumeRole provider:
//! accounts are real, roles can refuse.

mod common;

use std::time::{Duration, Instant};

use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_sdk_sts::error::ProvideErrorMetadata;
use common::*;
use identity_emulator::AccountConfig;

#[tokio::test]
async fn long_term_credentials_act_in_the_management_account() {
    let emu = start(fast_config()).await;
    let me = sts(&management(&emu))
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.account(), Some(MANAGEMENT));
    assert_eq!(me.arn(), Some("arn:aws:iam::111111111111:root"));
}

#[tokio::test]
async fn assumed_role_credentials_act_in_the_assumed_account() {
    let emu = start(fast_config()).await;
    let out = sts(&management(&emu))
        .assume_role()
        .role_arn(format!("arn:aws:iam::{MEMBER}:role/{ROLE}"))
        .role_session_name("onboarding")
        .send()
        .await
        .unwrap();
    let creds = out.credentials().unwrap();
    assert!(creds.access_key_id().starts_with("ASIA"));
    assert!(!creds.session_token().is_empty());
    let user = out.assumed_role_user().unwrap();
    assert_eq!(
        user.arn(),
        format!("arn:aws:sts::{MEMBER}:assumed-role/{ROLE}/onboarding")
    );
    assert!(user.assumed_role_id().ends_with(":onboarding"));

    let config = assumed(&emu, MEMBER).await;
    let me = sts(&config).get_caller_identity().send().await.unwrap();
    assert_eq!(me.account(), Some(MEMBER));
    assert_eq!(
        me.arn(),
        Some(format!("arn:aws:sts::{MEMBER}:assumed-role/{ROLE}/tests").as_str())
    );
}

#[tokio::test]
async fn aws_config_assume_role_provider_works_against_the_emulator() {
    let emu = start(fast_config()).await;
    // the provider needs the time source and sleep that `aws_config::defaults` supplies;
    // everything that matters is still set explicitly
    let base = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(emu.url())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIATEST", "secret", None, None, "static"))
        .load()
        .await;
    let provider = AssumeRoleProvider::builder(format!("arn:aws:iam::{MEMBER}:role/{ROLE}"))
        .session_name("provider")
        .configure(&base)
        .build()
        .await;
    let config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(emu.url())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build();
    let me = sts(&config).get_caller_identity().send().await.unwrap();
    assert_eq!(me.account(), Some(MEMBER));
    let arn = sso(&config)
        .create_instance()
        .send()
        .await
        .unwrap()
        .instance_arn
        .unwrap();
    assert_eq!(
        emu.state()["accounts"][MEMBER]["instances"][0]["instance_arn"].as_str(),
        Some(arn.as_str())
    );
}

#[tokio::test]
async fn configured_roles_refuse_assumption() {
    let config = fast_config().with_account(AccountConfig::new(MEMBER).refusing_role(ROLE));
    let emu = start(config).await;
    let client = sts(&management(&emu));
    let err = client
        .assume_role()
        .role_arn(format!("arn:aws:iam::{MEMBER}:role/{ROLE}"))
        .role_session_name("denied")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("AccessDenied"));
    assert!(err
        .message()
        .unwrap()
        .contains("not authorized to perform: sts:AssumeRole"));
    // another role of the same account is fine
    client
        .assume_role()
        .role_arn(format!("arn:aws:iam::{MEMBER}:role/Other"))
        .role_session_name("ok")
        .send()
        .await
        .expect("other role");
}

#[tokio::test]
async fn malformed_role_arns_and_session_names_are_refused() {
    let emu = start(fast_config()).await;
    let client = sts(&management(&emu));
    let err = client
        .assume_role()
        .role_arn("arn:aws:iam::12345:role/Short")
        .role_session_name("s1")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("ValidationError"));
    let err = client
        .assume_role()
        .role_arn(format!("arn:aws:iam::{MEMBER}:role/{ROLE}"))
        .role_session_name("bad session")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("ValidationError"));
    assert!(err.message().unwrap().contains("roleSessionName"));
}

#[tokio::test]
async fn a_late_role_is_refused_until_it_appears_after_the_first_attempt() {
    const LATE: &str = "444444444444";
    // roomy: the three refused calls below must all land inside the window on a busy machine
    const APPEARS_MS: u64 = 1000;
    let config =
        fast_config().with_account(AccountConfig::new(LATE).role_appearing_after(APPEARS_MS));
    let emu = start(config).await;
    let client = sts(&management(&emu));
    let assume = |role: &'static str| {
        client
            .assume_role()
            .role_arn(format!("arn:aws:iam::{LATE}:role/{role}"))
            .role_session_name("late")
            .send()
    };

    // the clock only starts at the first attempt: waiting before it changes nothing
    tokio::time::sleep(Duration::from_millis(APPEARS_MS + 100)).await;
    let first = Instant::now();
    for role in [ROLE, "OrganizationAccountAccessRole", ROLE] {
        let err = assume(role).await.unwrap_err();
        let status = err.raw_response().map(|r| r.status().as_u16());
        let err = err.into_service_error();
        assert_eq!(err.code(), Some("AccessDenied"), "{role}");
        assert_eq!(status, Some(403));
        assert!(err
            .message()
            .unwrap()
            .contains("not authorized to perform: sts:AssumeRole"));
    }
    // a role of another account is there from the start
    client
        .assume_role()
        .role_arn(format!("arn:aws:iam::{MEMBER}:role/{ROLE}"))
        .role_session_name("other")
        .send()
        .await
        .expect("another account");

    let out = eventually(Duration::from_secs(5), || async { assume(ROLE).await.ok() }).await;
    assert!(
        first.elapsed() >= Duration::from_millis(APPEARS_MS),
        "appeared after {:?}",
        first.elapsed()
    );
    let creds = out.credentials().unwrap();
    let config = sdk_config_with(
        &emu,
        Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_string()),
            None,
            "late",
        ),
        1,
    );
    let me = sts(&config).get_caller_identity().send().await.unwrap();
    assert_eq!(me.account(), Some(LATE));

    // reset restarts the clock: the role is missing again until APPEARS_MS after the next try
    emu.reset();
    let err = assume(ROLE).await.unwrap_err().into_service_error();
    assert_eq!(err.code(), Some("AccessDenied"));
}

#[tokio::test]
async fn a_late_role_that_is_also_refused_stays_refused() {
    const LATE: &str = "444444444444";
    let config = fast_config().with_account(
        AccountConfig::new(LATE)
            .role_appearing_after(50)
            .refusing_role(ROLE),
    );
    let emu = start(config).await;
    let client = sts(&management(&emu));
    let assume = |role: &'static str| {
        client
            .assume_role()
            .role_arn(format!("arn:aws:iam::{LATE}:role/{role}"))
            .role_session_name("late")
            .send()
    };
    assert!(assume("Other").await.is_err());
    tokio::time::sleep(Duration::from_millis(150)).await;
    assume("Other").await.expect("appeared");
    let err = assume(ROLE).await.unwrap_err().into_service_error();
    assert_eq!(err.code(), Some("AccessDenied"));
}

#[tokio::test]
async fn role_arns_of_every_partition_are_accepted() {
    let emu = start(fast_config()).await;
    let client = sts(&management(&emu));
    for partition in ["aws", "aws-cn", "aws-us-gov"] {
        let out = client
            .assume_role()
            .role_arn(format!("arn:{partition}:iam::{MEMBER}:role/{ROLE}"))
            .role_session_name("partition")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{partition}: {e:?}"));
        let user = out.assumed_role_user().unwrap();
        assert_eq!(
            user.arn(),
            format!("arn:{partition}:sts::{MEMBER}:assumed-role/{ROLE}/partition")
        );
        let c = out.credentials().unwrap();
        let config = sdk_config_with(
            &emu,
            Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_string()),
                None,
                "partition",
            ),
            1,
        );
        let me = sts(&config).get_caller_identity().send().await.unwrap();
        assert_eq!(me.account(), Some(MEMBER));
        assert!(me
            .arn()
            .unwrap()
            .starts_with(&format!("arn:{partition}:sts::")));
    }
    let err = client
        .assume_role()
        .role_arn(format!("arn:aws-mars:iam::{MEMBER}:role/{ROLE}"))
        .role_session_name("partition")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("ValidationError"));
}

#[tokio::test]
async fn a_closed_account_refuses_every_assume_role_until_it_is_reopened() {
    const CLOSED: &str = "555555555555";
    let emu = start(fast_config().with_account(AccountConfig::new(CLOSED).closed())).await;
    let client = sts(&management(&emu));
    let assume = |account: &'static str| {
        client
            .assume_role()
            .role_arn(format!("arn:aws:iam::{account}:role/{ROLE}"))
            .role_session_name("closed")
            .send()
    };
    let refused = |err: aws_sdk_sts::error::SdkError<
        aws_sdk_sts::operation::assume_role::AssumeRoleError,
        aws_sdk_sts::config::http::HttpResponse,
    >| {
        let status = err.raw_response().map(|r| r.status().as_u16());
        (err.into_service_error().code().map(str::to_owned), status)
    };
    // Closed in the config.
    let err = assume(CLOSED).await.unwrap_err();
    assert_eq!(refused(err), (Some("AccessDenied".into()), Some(403)));
    // Reopened and closed again at run time, through the admin API and the Rust API.
    let (status, body) = raw(
        &emu,
        "POST",
        &format!("/_emulator/accounts/{CLOSED}/reopen"),
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assume(CLOSED)
        .await
        .expect("a reopened account can be assumed into");
    emu.close_account(MEMBER);
    let err = assume(MEMBER).await.unwrap_err();
    assert_eq!(refused(err), (Some("AccessDenied".into()), Some(403)));
    emu.reopen_account(MEMBER);
    assume(MEMBER).await.expect("reopened");
    let (status, _) = raw(
        &emu,
        "POST",
        &format!("/_emulator/accounts/{MEMBER}/close"),
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    assert!(assume(MEMBER).await.is_err());
    // `reset` goes back to the configured closures.
    emu.reset();
    assume(MEMBER).await.expect("not closed in the config");
    assert!(assume(CLOSED).await.is_err());
    let (status, _) = raw(&emu, "POST", "/_emulator/accounts/12345/close", &[], b"").await;
    assert_eq!(status, 404);
}
