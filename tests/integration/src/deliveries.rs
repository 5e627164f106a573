//! Real-shaped events and the envelopes AWS delivers them in: a direct EventBridge
//! invocation, or SQS records (standard or FIFO) whose body is the EventBridge event.

use serde_json::{json, Value};

use crate::stack::{REGION, SOURCE};

pub const REQUEST_DETAIL_TYPE: &str = "Account Onboarding Requested";

/// The project's own onboarding request for `account`.
pub fn onboarding_requested(event_id: &str, account: &str, detail_extra: Value) -> Value {
    let mut detail = json!({
        "schemaVersion": "1",
        "accountId": account,
        "accountName": format!("account-{account}"),
    });
    if let (Some(d), Some(extra)) = (detail.as_object_mut(), detail_extra.as_object()) {
        d.extend(extra.clone());
    }
    envelope(event_id, SOURCE, REQUEST_DETAIL_TYPE, detail)
}

/// An OIDC identity provider on `portal_arn` whose client secret lives in `secret_id`.
pub fn oidc_provider(portal_arn: &str, name: &str, secret_id: &str) -> Value {
    json!({
        "webIdentityProvider": {
            "portalArn": portal_arn,
            "providerName": name,
            "providerType": "OIDC",
            "details": {
                "client_id": "onboarding-client",
                "oidc_issuer": "https://idp.example.com",
                "authorize_scopes": "openid email",
                "attributes_request_method": "GET"
            },
            "secretId": secret_id
        }
    })
}

/// AWS Control Tower's CreateManagedAccount (or UpdateManagedAccount) result.
pub fn control_tower(event_id: &str, event_name: &str, account: &str, state: &str) -> Value {
    let status_key = if event_name == "UpdateManagedAccount" {
        "updateManagedAccountStatus"
    } else {
        "createManagedAccountStatus"
    };
    envelope(
        event_id,
        "aws.controltower",
        "AWS Service Event via CloudTrail",
        json!({
            "eventVersion": "1.08",
            "eventSource": "controltower.amazonaws.com",
            "eventName": event_name,
            "awsRegion": REGION,
            "serviceEventDetails": {
                status_key: {
                    "organizationalUnit": { "organizationalUnitName": "Workloads", "organizationalUnitId": "ou-abcd-12345678" },
                    "account": { "accountName": format!("account-{account}"), "accountId": account },
                    "state": state,
                    "message": "AWS Control Tower successfully created a managed account.",
                    "requestedTimestamp": "2026-11-22T08:45:18+0000",
                    "completedTimestamp": "2026-11-22T08:59:18+0000"
                }
            }
        }),
    )
}

/// AWS Organizations' CreateAccountResult.
pub fn organizations(event_id: &str, account: &str, state: &str) -> Value {
    envelope(
        event_id,
        "aws.organizations",
        "AWS Service Event via CloudTrail",
        json!({
            "eventVersion": "1.08",
            "eventSource": "organizations.amazonaws.com",
            "eventName": "CreateAccountResult",
            "awsRegion": REGION,
            "serviceEventDetails": {
                "createAccountStatus": {
                    "id": "car-0123456789abcdef0123456789abcdef",
                    "state": state,
                    "accountName": format!("account-{account}"),
                    "accountId": account,
                    "requestedTimestamp": "Nov 22, 2026 8:45:18 AM",
                    "completedTimestamp": "Nov 22, 2026 8:46:02 AM"
                }
            }
        }),
    )
}

/// The EventBridge envelope.
pub fn envelope(event_id: &str, source: &str, detail_type: &str, detail: Value) -> Value {
    json!({
        "version": "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": source,
        "account": "111111111111",
        "time": "2026-11-22T09:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": detail,
    })
}

/// One SQS record of a batch.
pub struct Record {
    pub message_id: String,
    pub body: String,
    pub group_id: Option<String>,
    pub receive_count: u32,
}

impl Record {
    pub fn of(message_id: &str, event: &Value) -> Self {
        Record {
            message_id: message_id.into(),
            body: event.to_string(),
            group_id: None,
            receive_count: 1,
        }
    }

    pub fn in_group(mut self, group: &str) -> Self {
        self.group_id = Some(group.into());
        self
    }
}

/// The SQS event Lambda delivers for `records` (a FIFO queue when they carry groups).
pub fn sqs_batch(records: &[Record]) -> Value {
    let fifo = records.iter().any(|r| r.group_id.is_some());
    let queue = if fifo {
        "onboarding.fifo"
    } else {
        "onboarding"
    };
    sqs_batch_from(&queue_arn(queue), records)
}

/// The ARN of the test queue `name` (what records carry as `eventSourceARN`).
pub fn queue_arn(name: &str) -> String {
    format!("arn:aws:sqs:{REGION}:111111111111:{name}")
}

/// The SQS event Lambda delivers for `records` received from the queue `queue_arn`.
pub fn sqs_batch_from(queue_arn: &str, records: &[Record]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut attributes = json!({
                "ApproximateReceiveCount": r.receive_count.to_string(),
                "SentTimestamp": "1763802000000",
                "SenderId": "AIDAEXAMPLE",
                "ApproximateFirstReceiveTimestamp": "1763802000100",
            });
            if let Some(group) = &r.group_id {
                attributes["MessageGroupId"] = json!(group);
                attributes["MessageDeduplicationId"] = json!(format!("dedup-{}", r.message_id));
                attributes["SequenceNumber"] = json!(format!("{:020}", i + 1));
            }
            json!({
                "messageId": r.message_id,
                "receiptHandle": format!("handle-{}", r.message_id),
                "body": r.body,
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": "0",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The message ids a batch reply asks to retry.
pub fn failed_ids(reply: &Value) -> Vec<String> {
    reply["batchItemFailures"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["itemIdentifier"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `event` with its envelope `time` set (the request's place in the revision order).
pub fn at(mut event: Value, time: &str) -> Value {
    event["time"] = serde_json::json!(time);
    event
}

/// The emitted events of one detail-type.
pub fn of_type(emitted: &[Value], detail_type: &str) -> Vec<Value> {
    emitted
        .iter()
        .filter(|e| e["detail-type"] == detail_type)
        .cloned()
        .collect()
}
