//! Events the project emits so pipelines and later steps can react: "<Step> Ready" and
//! "Onboarding Step Failed". The detail schema is documented in events/README.md.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde_json::json;

use crate::error::StepError;
use crate::ledger::{ErrorReason, Origin};
use crate::revision::Revision;

pub const STEP_FAILED_DETAIL_TYPE: &str = "Onboarding Step Failed";
pub const DRIFT_DETECTED_DETAIL_TYPE: &str = "Onboarding Drift Detected";
const SCHEMA_VERSION: &str = "1";

/// What an announcement is about.
pub struct Subject<'a> {
    pub step: &'a str,
    pub account_id: Option<&'a str>,
    pub request_event_id: &'a str,
}

#[derive(Clone)]
pub struct Announcer {
    client: aws_sdk_eventbridge::Client,
    bus: String,
    source: String,
}

impl Announcer {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: String, source: String) -> Self {
        Self {
            client,
            bus,
            source,
        }
    }

    pub async fn ready(
        &self,
        detail_type: &str,
        subject: &Subject<'_>,
        resource_arn: &str,
        client_token: &str,
        origin: Option<Origin>,
    ) -> Result<(), StepError> {
        let mut detail = json!({
            "schemaVersion": SCHEMA_VERSION,
            "step": subject.step,
            "resourceArn": resource_arn,
            "clientToken": client_token,
            "requestEventId": subject.request_event_id,
        });
        // How the resource came to be: created, adopted (an earlier attempt's, response
        // lost) or pre-existing (there before us, and what was asked).
        if let Some(origin) = origin {
            detail["origin"] = json!(origin.as_str());
        }
        if let Some(account) = subject.account_id {
            detail["accountId"] = json!(account);
        }
        self.put(detail_type, &detail).await
    }

    /// "<Step> Updated": a newer request changed the resource. Names the changed fields,
    /// never their values (a secret's name may be among them, never a secret).
    pub async fn updated(
        &self,
        detail_type: &str,
        subject: &Subject<'_>,
        resource_arn: &str,
        revision: &Revision,
        changed: &[String],
    ) -> Result<(), StepError> {
        let mut detail = json!({
            "schemaVersion": SCHEMA_VERSION,
            "step": subject.step,
            "resourceArn": resource_arn,
            "revision": { "time": revision.time(), "eventId": revision.event_id() },
            "changed": changed,
            "requestEventId": subject.request_event_id,
        });
        if let Some(account) = subject.account_id {
            detail["accountId"] = json!(account);
        }
        self.put(detail_type, &detail).await
    }

    /// "Onboarding Drift Detected": a READY step's resource was deleted or changed behind
    /// the project's back. Names the changed fields, never values.
    pub async fn drift(
        &self,
        subject: &Subject<'_>,
        resource_arn: &str,
        gone: bool,
        changed: &[String],
        repairing: bool,
    ) -> Result<(), StepError> {
        let mut detail = json!({
            "schemaVersion": SCHEMA_VERSION,
            "step": subject.step,
            "resourceArn": resource_arn,
            "gone": gone,
            "changed": changed,
            "repair": if repairing { "started" } else { "off" },
        });
        if let Some(account) = subject.account_id {
            detail["accountId"] = json!(account);
        }
        self.put(DRIFT_DETECTED_DETAIL_TYPE, &detail).await
    }

    pub async fn failed(
        &self,
        subject: &Subject<'_>,
        reason: &ErrorReason,
    ) -> Result<(), StepError> {
        let mut detail = json!({
            "schemaVersion": SCHEMA_VERSION,
            "step": subject.step,
            "reason": { "code": reason.code, "message": reason.message, "retryable": false },
            "requestEventId": subject.request_event_id,
        });
        if let Some(account) = subject.account_id {
            detail["accountId"] = json!(account);
        }
        self.put(STEP_FAILED_DETAIL_TYPE, &detail).await
    }

    async fn put(&self, detail_type: &str, detail: &serde_json::Value) -> Result<(), StepError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(&self.source)
            .detail_type(detail_type)
            .detail(detail.to_string())
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| StepError::from_sdk("events PutEvents", e))?;
        // PutEvents reports per-entry failures in a 200 response: not announced, retry.
        if out.failed_entry_count() > 0 {
            let why = out
                .entries()
                .iter()
                .find_map(|e| e.error_message().map(str::to_string))
                .unwrap_or_default();
            return Err(StepError::retryable(
                "PutEventsFailedEntry",
                format!("events PutEvents rejected the {detail_type} event: {why}"),
            ));
        }
        Ok(())
    }
}
