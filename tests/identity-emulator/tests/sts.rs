//! STS through the real `aws-sdk-sts` client and `aws_config`'s AssumeRole provider:
//! accounts are real, roles can refuse.

mod common;

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
