//! Updates and tags through the real SDK clients: SSO Admin `UpdateInstance`,
//! `TagResource`, `UntagResource`, `ListTagsForResource` on account instances; WorkSpaces
//! Web `UpdateIdentityProvider` and the same three tag operations on portals and providers.
//! Model validation, ClientToken rules, fault injection, counters and the per-resource
//! history of states.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_ssoadmin::operation::list_tags_for_resource::ListTagsForResourceError as SsoListTagsError;
use aws_sdk_ssoadmin::operation::tag_resource::TagResourceError as SsoTagError;
use aws_sdk_ssoadmin::operation::update_instance::UpdateInstanceError;
use aws_sdk_ssoadmin::types::{
    EncryptionConfiguration, InstanceStatus, KmsKeyStatus, KmsKeyType, Tag as SsoTag,
};
use aws_sdk_workspacesweb::operation::tag_resource::TagResourceError as WebTagError;
use aws_sdk_workspacesweb::operation::untag_resource::UntagResourceError as WebUntagError;
use aws_sdk_workspacesweb::operation::update_identity_provider::UpdateIdentityProviderError;
use aws_sdk_workspacesweb::types::{IdentityProviderType, Tag as WebTag};
use common::*;
use identity_emulator::{Config, Emulator, FaultConfig, FaultRule};
use serde_json::Value;

const KMS_KEY: &str = "arn:aws:kms:us-east-1:222222222222:key/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const SECRET_1: &str = "CANARY-secret-one";
const SECRET_2: &str = "CANARY-secret-two";

fn sso_tag(key: &str, value: &str) -> SsoTag {
    SsoTag::builder().key(key).value(value).build().unwrap()
}

fn web_tag(key: &str, value: &str) -> WebTag {
    WebTag::builder().key(key).value(value).build().unwrap()
}

/// The states recorded for `arn`, from the top-level `history` of the state dump.
fn history(emu: &Emulator, arn: &str) -> Vec<Value> {
    emu.state()["history"][arn]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `field` of every recorded state of `arn`.
fn history_of(emu: &Emulator, arn: &str, field: &str) -> Vec<Value> {
    history(emu, arn).iter().map(|e| e[field].clone()).collect()
}

fn versions_increase(entries: &[Value]) {
    let versions: Vec<u64> = entries
        .iter()
        .filter_map(|e| e["version"].as_u64())
        .collect();
    let expected: Vec<u64> = (1..=entries.len() as u64).collect();
    assert_eq!(versions, expected);
}

/// An `ACTIVE` account instance of `MEMBER` and the member's SSO Admin client.
async fn active_instance(emu: &Emulator) -> (aws_sdk_ssoadmin::Client, String) {
    let client = sso(&assumed(emu, MEMBER).await);
    let arn = client
        .create_instance()
        .name("payments")
        .tags(sso_tag("team", "payments"))
        .send()
        .await
        .unwrap()
        .instance_arn
        .unwrap();
    eventually(Duration::from_secs(5), || async {
        let d = client
            .describe_instance()
            .instance_arn(&arn)
            .send()
            .await
            .unwrap();
        (d.status() == Some(&InstanceStatus::Active)).then_some(())
    })
    .await;
    (client, arn)
}

#[tokio::test]
async fn update_instance_renames_and_sets_the_key_and_each_update_is_recorded() {
    let emu = start(fast_config()).await;
    let (client, arn) = active_instance(&emu).await;

    client
        .update_instance()
        .instance_arn(&arn)
        .name("payments-prod")
        .send()
        .await
        .expect("rename");
    let d = client
        .describe_instance()
        .instance_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(d.name(), Some("payments-prod"));
    assert!(d.encryption_configuration_details().is_none());

    client
        .update_instance()
        .instance_arn(&arn)
        .encryption_configuration(
            EncryptionConfiguration::builder()
                .key_type(KmsKeyType::CustomerManagedKey)
                .kms_key_arn(KMS_KEY)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("customer managed key");
    let d = client
        .describe_instance()
        .instance_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(d.name(), Some("payments-prod"), "the name stays");
    let e = d.encryption_configuration_details().unwrap();
    assert_eq!(e.key_type(), Some(&KmsKeyType::CustomerManagedKey));
    assert_eq!(e.kms_key_arn(), Some(KMS_KEY));
    assert_eq!(e.encryption_status(), Some(&KmsKeyStatus::Enabled));

    assert_eq!(emu.counters().updated("UpdateInstance"), 2);
    assert_eq!(emu.counters().calls("UpdateInstance"), 2);
    let entries = history(&emu, &arn);
    versions_increase(&entries);
    let ops: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["operation"].as_str())
        .collect();
    assert_eq!(ops, ["CreateInstance", "UpdateInstance", "UpdateInstance"]);
    assert_eq!(
        history_of(&emu, &arn, "name"),
        ["payments", "payments-prod", "payments-prod"]
    );
    assert_eq!(entries[2]["encryption"]["KmsKeyArn"], KMS_KEY);
    // the same history sits on the resource in its account
    let state = emu.state();
    assert_eq!(
        state["accounts"][MEMBER]["instances"][0]["history"],
        Value::Array(entries)
    );

    // deleting appends a last state; the history outlives the instance
    client
        .delete_instance()
        .instance_arn(&arn)
        .send()
        .await
        .unwrap();
    let entries = history(&emu, &arn);
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[3]["deleted"], true);
}

#[tokio::test]
async fn instance_updates_are_refused_until_active_to_others_and_when_invalid() {
    let emu = start(Config {
        instance_activation_ms: 2000,
        ..fast_config()
    })
    .await;
    let member = sso(&assumed(&emu, MEMBER).await);
    let arn = member
        .create_instance()
        .send()
        .await
        .unwrap()
        .instance_arn
        .unwrap();
    let err = member
        .update_instance()
        .instance_arn(&arn)
        .name("early")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    match err {
        UpdateInstanceError::ConflictException(e) => {
            assert!(e.message().unwrap().contains("CREATE_IN_PROGRESS"), "{e:?}")
        }
        other => panic!("expected ConflictException, got {other:?}"),
    }
    let err = member
        .tag_resource()
        .resource_arn(&arn)
        .tags(sso_tag("k", "v"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, SsoTagError::ConflictException(_)), "{err:?}");
    // reading tags works while it is created
    member
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .expect("list tags while in progress");

    let other = sso(&assumed(&emu, "333333333333").await);
    let err = other
        .update_instance()
        .instance_arn(&arn)
        .name("mine")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, UpdateInstanceError::AccessDeniedException(_)),
        "{err:?}"
    );
    let err = member
        .update_instance()
        .instance_arn("arn:aws:sso:::instance/ssoins-0000000000000000")
        .name("x")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, UpdateInstanceError::ResourceNotFoundException(_)),
        "{err:?}"
    );

    // the model and the documented KmsKeyArn rule
    let invalid = [
        member.update_instance().instance_arn(&arn).name("bad name"),
        member
            .update_instance()
            .instance_arn("arn:aws:sso:::instance/x"),
        member
            .update_instance()
            .instance_arn(&arn)
            .encryption_configuration(
                EncryptionConfiguration::builder()
                    .key_type(KmsKeyType::CustomerManagedKey)
                    .build()
                    .unwrap(),
            ),
        member
            .update_instance()
            .instance_arn(&arn)
            .encryption_configuration(
                EncryptionConfiguration::builder()
                    .key_type(KmsKeyType::AwsOwnedKmsKey)
                    .kms_key_arn(KMS_KEY)
                    .build()
                    .unwrap(),
            ),
    ];
    for call in invalid {
        let err = call.send().await.unwrap_err().into_service_error();
        assert!(
            matches!(err, UpdateInstanceError::ValidationException(_)),
            "{err:?}"
        );
    }
    assert_eq!(emu.counters().updated("UpdateInstance"), 0);
    assert_eq!(history(&emu, &arn).len(), 1, "only the create");
}

#[tokio::test]
async fn instance_tags_are_added_replaced_listed_and_removed() {
    let emu = start(fast_config()).await;
    let (client, arn) = active_instance(&emu).await;

    let listed = client
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    let tags: HashMap<_, _> = listed.tags().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(
        tags,
        HashMap::from([("team", "payments")]),
        "from CreateInstance"
    );

    client
        .tag_resource()
        .instance_arn(&arn)
        .resource_arn(&arn)
        .tags(sso_tag("team", "platform"))
        .tags(sso_tag("cost-center", "1234"))
        .send()
        .await
        .expect("tag");
    client
        .untag_resource()
        .instance_arn(&arn)
        .resource_arn(&arn)
        .tag_keys("cost-center")
        .tag_keys("never-set")
        .send()
        .await
        .expect("untag");
    let listed = client
        .list_tags_for_resource()
        .instance_arn(&arn)
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    let tags: HashMap<_, _> = listed.tags().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(tags, HashMap::from([("team", "platform")]));
    assert!(listed.next_token().is_none());

    let counters = emu.counters();
    assert_eq!(counters.updated("TagResource"), 1);
    assert_eq!(counters.updated("UntagResource"), 1);
    let tag_states = history_of(&emu, &arn, "tags");
    assert_eq!(
        tag_states,
        [
            serde_json::json!({"team": "payments"}),
            serde_json::json!({"team": "platform", "cost-center": "1234"}),
            serde_json::json!({"team": "platform"}),
        ]
    );

    // the management account reads the tags of the organization's instances, but only the
    // owner changes them
    let mgmt = sso(&management(&emu));
    mgmt.list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .expect("management reads");
    let err = mgmt
        .tag_resource()
        .resource_arn(&arn)
        .tags(sso_tag("k", "v"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, SsoTagError::AccessDeniedException(_)),
        "{err:?}"
    );
    let err = sso(&assumed(&emu, "333333333333").await)
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, SsoListTagsError::AccessDeniedException(_)),
        "{err:?}"
    );

    // refused: reserved keys, duplicate keys, a foreign InstanceArn, resources the emulator
    // does not hold, more than 50 tags
    let err = client
        .tag_resource()
        .resource_arn(&arn)
        .tags(sso_tag("aws:created-by", "me"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, SsoTagError::ValidationException(_)),
        "{err:?}"
    );
    let err = client
        .tag_resource()
        .resource_arn(&arn)
        .tags(sso_tag("a", "1"))
        .tags(sso_tag("a", "2"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, SsoTagError::ValidationException(_)),
        "{err:?}"
    );
    let err = client
        .tag_resource()
        .instance_arn(emu.config().organization_instance_arn())
        .resource_arn(&arn)
        .tags(sso_tag("a", "1"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, SsoTagError::ValidationException(_)),
        "{err:?}"
    );
    let permission_set = format!(
        "arn:aws:sso:::permissionSet/{}/ps-0123456789abcdef",
        arn.rsplit('/').next().unwrap()
    );
    let err = client
        .tag_resource()
        .resource_arn(permission_set)
        .tags(sso_tag("a", "1"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, SsoTagError::ResourceNotFoundException(_)),
        "{err:?}"
    );
    let mut many = client.tag_resource().resource_arn(&arn);
    for i in 0..50 {
        many = many.tags(sso_tag(&format!("k{i:02}"), "v"));
    }
    let err = many.send().await.unwrap_err().into_service_error();
    match err {
        SsoTagError::ServiceQuotaExceededException(e) => {
            assert!(e.message().unwrap().contains("at most 50"), "{e:?}")
        }
        other => panic!("expected ServiceQuotaExceededException, got {other:?}"),
    }
    assert_eq!(
        emu.counters().updated("TagResource"),
        1,
        "nothing refused was applied"
    );
    assert_eq!(history(&emu, &arn).len(), 3);
}

#[tokio::test]
async fn instance_updates_take_faults_like_creates() {
    let emu = start(fast_config()).await;
    let (client, arn) = active_instance(&emu).await;

    // an injected conflict changes nothing and is not retried by the SDK
    emu.set_faults(FaultConfig::new(4).with_rule(
        "UpdateInstance",
        FaultRule {
            conflict_rate: 1.0,
            max_faults: Some(1),
            ..FaultRule::default()
        },
    ));
    let err = client
        .update_instance()
        .instance_arn(&arn)
        .name("renamed")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, UpdateInstanceError::ConflictException(_)),
        "{err:?}"
    );
    assert_eq!(history(&emu, &arn).len(), 1);
    assert_eq!(emu.counters().faults("UpdateInstance").conflicts, 1);

    // throttled, then a lost response: the SDK's retries get through; the update commits
    // once per call that reached it
    emu.set_faults(
        FaultConfig::new(5)
            .with_rule(
                "UpdateInstance",
                FaultRule {
                    throttle_rate: 1.0,
                    max_faults: Some(1),
                    ..FaultRule::default()
                },
            )
            .with_rule(
                "TagResource",
                FaultRule {
                    commit_then_fail_rate: 1.0,
                    max_faults: Some(1),
                    ..FaultRule::default()
                },
            ),
    );
    client
        .update_instance()
        .instance_arn(&arn)
        .name("renamed")
        .send()
        .await
        .expect("retried after throttling");
    client
        .tag_resource()
        .resource_arn(&arn)
        .tags(sso_tag("k", "v"))
        .send()
        .await
        .expect("retried after a lost response");
    let counters = emu.counters();
    assert_eq!(counters.calls("UpdateInstance"), 3);
    assert_eq!(counters.updated("UpdateInstance"), 1);
    assert_eq!(counters.faults("UpdateInstance").throttled, 1);
    assert_eq!(counters.calls("TagResource"), 2);
    assert_eq!(
        counters.updated("TagResource"),
        2,
        "no token: both attempts applied"
    );
    assert_eq!(counters.faults("TagResource").commit_then_fail, 1);
    assert_eq!(
        history_of(&emu, &arn, "name"),
        ["payments", "renamed", "renamed", "renamed"]
    );
    // The entries name the SDK call they came from: both attempts of the one TagResource
    // call share its amz-sdk-invocation-id, which the UpdateInstance call's differs from.
    let calls = history_of(&emu, &arn, "invocation");
    assert!(calls[1].is_string(), "{calls:?}");
    assert_eq!(calls[2], calls[3], "{calls:?}");
    assert_ne!(calls[1], calls[2], "{calls:?}");
}

fn oidc(secret: &str) -> HashMap<String, String> {
    [
        ("client_id", "abc"),
        ("client_secret", secret),
        ("oidc_issuer", "https://idp.example.com"),
        ("authorize_scopes", "openid"),
        ("attributes_request_method", "GET"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A portal of `MEMBER` with one OIDC provider: (client, portal ARN, provider ARN).
async fn portal_with_provider(emu: &Emulator) -> (aws_sdk_workspacesweb::Client, String, String) {
    let client = web(&assumed(emu, MEMBER).await);
    let portal = client
        .create_portal()
        .tags(web_tag("team", "payments"))
        .send()
        .await
        .unwrap()
        .portal_arn;
    let provider = client
        .create_identity_provider()
        .portal_arn(&portal)
        .identity_provider_name("corp")
        .identity_provider_type(IdentityProviderType::Oidc)
        .set_identity_provider_details(Some(oidc(SECRET_1)))
        .send()
        .await
        .unwrap()
        .identity_provider_arn;
    (client, portal, provider)
}

#[tokio::test]
async fn update_identity_provider_replaces_what_it_is_given() {
    let emu = start(fast_config()).await;
    let (client, portal, arn) = portal_with_provider(&emu).await;

    // rename: type and details stay
    let out = client
        .update_identity_provider()
        .identity_provider_arn(&arn)
        .identity_provider_name("corp-sso")
        .send()
        .await
        .expect("rename");
    let idp = out.identity_provider().unwrap();
    assert_eq!(idp.identity_provider_name(), Some("corp-sso"));
    assert_eq!(
        idp.identity_provider_type(),
        Some(&IdentityProviderType::Oidc)
    );
    assert_eq!(
        idp.identity_provider_details()
            .and_then(|d| d.get("client_secret"))
            .map(String::as_str),
        Some(SECRET_1)
    );

    // rotate the secret: the details are replaced as a whole
    client
        .update_identity_provider()
        .identity_provider_arn(&arn)
        .set_identity_provider_details(Some(oidc(SECRET_2)))
        .send()
        .await
        .expect("rotate");
    let got = client
        .get_identity_provider()
        .identity_provider_arn(&arn)
        .send()
        .await
        .unwrap();
    let details = got
        .identity_provider()
        .unwrap()
        .identity_provider_details()
        .unwrap();
    assert_eq!(
        details.get("client_secret").map(String::as_str),
        Some(SECRET_2)
    );

    // a partial map is not merged: it misses required keys
    let partial = HashMap::from([("client_secret".to_string(), "CANARY-partial".to_string())]);
    let err = client
        .update_identity_provider()
        .identity_provider_arn(&arn)
        .set_identity_provider_details(Some(partial))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    match err {
        UpdateIdentityProviderError::ValidationException(e) => {
            let msg = e.message().unwrap_or_default();
            assert!(msg.contains("client_id is required"), "{msg}");
            assert!(!msg.contains("CANARY"), "{msg}");
        }
        other => panic!("expected ValidationException, got {other:?}"),
    }
    // a new type needs details of that type
    let err = client
        .update_identity_provider()
        .identity_provider_arn(&arn)
        .identity_provider_type(IdentityProviderType::Saml)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, UpdateIdentityProviderError::ValidationException(_)),
        "{err:?}"
    );
    client
        .update_identity_provider()
        .identity_provider_arn(&arn)
        .identity_provider_type(IdentityProviderType::Saml)
        .identity_provider_details("MetadataURL", "https://idp.example.com/metadata")
        .send()
        .await
        .expect("to SAML");

    // a name another provider of the portal has
    client
        .create_identity_provider()
        .portal_arn(&portal)
        .identity_provider_name("other")
        .identity_provider_type(IdentityProviderType::Saml)
        .identity_provider_details("MetadataURL", "https://idp.example.com/m")
        .send()
        .await
        .unwrap();
    let err = client
        .update_identity_provider()
        .identity_provider_arn(&arn)
        .identity_provider_name("other")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    match err {
        UpdateIdentityProviderError::ValidationException(e) => {
            assert_eq!(e.field_list()[0].name(), "identityProviderName")
        }
        other => panic!("expected ValidationException, got {other:?}"),
    }
    let err = client
        .update_identity_provider()
        .identity_provider_arn(
            format!("{portal}/00000000-0000-4000-8000-000000000000")
                .replace(":portal/", ":identityProvider/"),
        )
        .identity_provider_name("unknown")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            err,
            UpdateIdentityProviderError::ResourceNotFoundException(_)
        ),
        "{err:?}"
    );

    // three updates applied, each recorded; secrets never in the state
    assert_eq!(emu.counters().updated("UpdateIdentityProvider"), 3);
    let entries = history(&emu, &arn);
    versions_increase(&entries);
    let names: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["identity_provider_name"].as_str())
        .collect();
    assert_eq!(names, ["corp", "corp-sso", "corp-sso", "corp-sso"]);
    let types: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["identity_provider_type"].as_str())
        .collect();
    assert_eq!(types, ["OIDC", "OIDC", "OIDC", "SAML"]);
    let prints: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["fingerprint"].as_str())
        .collect();
    assert_eq!(prints.len(), 4);
    assert_ne!(
        prints[1], prints[2],
        "a rotated secret changes the fingerprint"
    );
    assert_eq!(
        entries[3]["detail_keys"],
        serde_json::json!(["MetadataURL"])
    );
    assert!(!emu.state().to_string().contains("CANARY"));
}

#[tokio::test]
async fn update_identity_provider_client_tokens() {
    let emu = start(fast_config()).await;
    let (client, _, arn) = portal_with_provider(&emu).await;
    let rename = |name: &'static str, token: &'static str| {
        client
            .update_identity_provider()
            .identity_provider_arn(&arn)
            .identity_provider_name(name)
            .client_token(token)
            .send()
    };
    let a = rename("step-1", "tok-1").await.unwrap();
    // another update in between; the replay still answers what the first call answered
    rename("step-2", "tok-2").await.unwrap();
    let b = rename("step-1", "tok-1").await.unwrap();
    assert_eq!(
        a.identity_provider().unwrap().identity_provider_name(),
        b.identity_provider().unwrap().identity_provider_name()
    );
    let counters = emu.counters();
    assert_eq!(counters.updated("UpdateIdentityProvider"), 2);
    assert_eq!(counters.returned_existing("UpdateIdentityProvider"), 1);
    // the replay changed nothing: the provider did not move back to step-1
    assert_eq!(
        history_of(&emu, &arn, "identity_provider_name"),
        ["corp", "step-1", "step-2"]
    );

    let err = rename("step-3", "tok-1")
        .await
        .unwrap_err()
        .into_service_error();
    match err {
        UpdateIdentityProviderError::ValidationException(e) => assert!(
            e.message()
                .unwrap_or_default()
                .contains("IdempotentParameterMismatch"),
            "{e:?}"
        ),
        other => panic!("expected ValidationException, got {other:?}"),
    }
    // once the token is forgotten the old call is new and applies again
    emu.forget_tokens();
    rename("step-1", "tok-1").await.unwrap();
    assert_eq!(
        history_of(&emu, &arn, "identity_provider_name"),
        ["corp", "step-1", "step-2", "step-1"]
    );
    // the model's token length
    let err = client
        .update_identity_provider()
        .identity_provider_arn(&arn)
        .identity_provider_name("x")
        .client_token("t".repeat(513))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, UpdateIdentityProviderError::ValidationException(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn lost_update_responses_are_recovered_without_moving_back() {
    let emu = start(fast_config()).await;
    let (_, _, arn) = portal_with_provider(&emu).await;
    let client = web(&assumed_with_attempts(&emu, MEMBER, 5).await);
    // updates lose their response after committing (a 500 or a dropped connection); the
    // SDK retries with its own clientToken and gets the replay
    emu.set_faults(FaultConfig::new(21).with_rule(
        "UpdateIdentityProvider",
        FaultRule {
            commit_then_fail_rate: 0.2,
            commit_then_drop_rate: 0.2,
            ..FaultRule::default()
        },
    ));
    let names: Vec<String> = (1..=8).map(|i| format!("name-{i}")).collect();
    for name in &names {
        let out = client
            .update_identity_provider()
            .identity_provider_arn(&arn)
            .identity_provider_name(name)
            .send()
            .await
            .expect("retried");
        assert_eq!(
            out.identity_provider().unwrap().identity_provider_name(),
            Some(name.as_str())
        );
    }
    let counters = emu.counters();
    let faults = counters.faults("UpdateIdentityProvider");
    assert!(
        faults.commit_then_fail + faults.commit_then_drop > 0,
        "{faults:?}"
    );
    assert_eq!(counters.updated("UpdateIdentityProvider"), 8);
    assert_eq!(
        counters.returned_existing("UpdateIdentityProvider"),
        faults.commit_then_fail + faults.commit_then_drop
    );
    let mut expected = vec!["corp".to_string()];
    expected.extend(names);
    assert_eq!(history_of(&emu, &arn, "identity_provider_name"), expected);
    versions_increase(&history(&emu, &arn));
}

#[tokio::test]
async fn portals_and_providers_are_tagged_with_tokens_and_limits() {
    let emu = start(fast_config()).await;
    let (client, portal, provider) = portal_with_provider(&emu).await;
    let tags_of = |arn: String| {
        let client = client.clone();
        async move {
            let out = client
                .list_tags_for_resource()
                .resource_arn(arn)
                .send()
                .await
                .unwrap();
            out.tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect::<HashMap<_, _>>()
        }
    };
    assert_eq!(
        tags_of(portal.clone()).await,
        HashMap::from([("team".to_string(), "payments".to_string())]),
        "from CreatePortal"
    );

    for (key, value) in [("env", "prod"), ("owner", "CANARY-owner"), ("tier", "1")] {
        client
            .tag_resource()
            .resource_arn(&provider)
            .tags(web_tag(key, value))
            .client_token(format!("tag-{key}"))
            .send()
            .await
            .unwrap();
    }
    // same token, same tags: a replay; same token, other tags: refused
    client
        .tag_resource()
        .resource_arn(&provider)
        .tags(web_tag("env", "prod"))
        .client_token("tag-env")
        .send()
        .await
        .unwrap();
    let err = client
        .tag_resource()
        .resource_arn(&provider)
        .tags(web_tag("env", "dev"))
        .client_token("tag-env")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    match err {
        WebTagError::ValidationException(e) => {
            assert!(e
                .message()
                .unwrap_or_default()
                .contains("IdempotentParameterMismatch"))
        }
        other => panic!("expected ValidationException, got {other:?}"),
    }
    // several keys in one untag travel as a repeated query parameter
    client
        .untag_resource()
        .resource_arn(&provider)
        .tag_keys("owner")
        .tag_keys("tier")
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags_of(provider.clone()).await,
        HashMap::from([("env".to_string(), "prod".to_string())])
    );
    let counters = emu.counters();
    assert_eq!(counters.updated("TagResource"), 3);
    assert_eq!(counters.returned_existing("TagResource"), 1);
    assert_eq!(counters.updated("UntagResource"), 1);
    let keys = history_of(&emu, &provider, "tag_keys");
    assert_eq!(
        keys,
        [
            serde_json::json!([]),
            serde_json::json!(["env"]),
            serde_json::json!(["env", "owner"]),
            serde_json::json!(["env", "owner", "tier"]),
            serde_json::json!(["env"]),
        ]
    );
    // tags are @sensitive: the state shows keys, never values
    let state = emu.state().to_string();
    assert!(
        state.contains("\"owner\"") && !state.contains("CANARY"),
        "{state}"
    );

    // limits and refusals
    let mut many = client.tag_resource().resource_arn(&portal);
    for i in 0..50 {
        many = many.tags(web_tag(&format!("k{i:02}"), "v"));
    }
    let err = many.send().await.unwrap_err().into_service_error();
    match err {
        WebTagError::TooManyTagsException(e) => {
            assert_eq!(e.resource_name(), Some(portal.as_str()))
        }
        other => panic!("expected TooManyTagsException, got {other:?}"),
    }
    let err = client
        .tag_resource()
        .resource_arn(&portal)
        .tags(web_tag("aws:team", "x"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, WebTagError::ValidationException(_)),
        "{err:?}"
    );
    let other = web(&assumed(&emu, "333333333333").await);
    let err = other
        .untag_resource()
        .resource_arn(&portal)
        .tag_keys("team")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, WebUntagError::ResourceNotFoundException(_)),
        "another account's portal: {err:?}"
    );
    let err = client
        .list_tags_for_resource()
        .resource_arn("arn:aws:workspaces-web:us-east-1:222222222222:portal/00000000-0000-4000-8000-000000000000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_workspacesweb::error::ProvideErrorMetadata::code(&err.into_service_error()),
        Some("ResourceNotFoundException")
    );
    assert_eq!(
        tags_of(portal.clone()).await.len(),
        1,
        "nothing refused was applied"
    );
}
