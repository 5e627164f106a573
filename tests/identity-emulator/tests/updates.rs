//! Updates and tags through the real SDK clients: SSO Admin `UpdateInstance`,
//! `TagResource`, `UntagResource`, `ListTagsForResource` on account instances. Model
//! validation, fault injection, counters and the per-resource history of states.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_ssoadmin::operation::list_tags_for_resource::ListTagsForResourceError as SsoListTagsError;
use aws_sdk_ssoadmin::operation::tag_resource::TagResourceError as SsoTagError;
use aws_sdk_ssoadmin::operation::update_instance::UpdateInstanceError;
use aws_sdk_ssoadmin::types::{
    EncryptionConfiguration, InstanceStatus, KmsKeyStatus, KmsKeyType, Tag as SsoTag,
};
use common::*;
use identity_emulator::{Config, Emulator, FaultConfig, FaultRule};
use serde_json::Value;

const KMS_KEY: &str = "arn:aws:kms:us-east-1:222222222222:key/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

fn sso_tag(key: &str, value: &str) -> SsoTag {
    SsoTag::builder().key(key).value(value).build().unwrap()
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
}
