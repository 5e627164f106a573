//! The ledger table's layout: the one place that names the table's keys, index and attributes.
//!
//! One item per onboarding step at its scope:
//! - partition key [`PK`] (S): the scope, `account#<12-digit id>` or `org#<instance ARN>`;
//! - sort key [`SK`] (S): the step (`identity-center-instance`, `approval-identity-source`,
//!   `web-identity-provider#<portal ARN>#<provider name>`);
//! - TTL attribute [`EXPIRES_AT`] (N, epoch seconds): only on `IN_PROGRESS` claims and `FAILED` items;
//! - sparse GSI [`ATTENTION_INDEX`]: partition key [`ATTENTION`] (S, the status while not `READY`),
//!   sort key [`UPDATED_AT`] (N, epoch milliseconds).

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use super::error::{classify, LedgerError};

/// Environment variable naming the ledger table.
pub const TABLE_ENV: &str = "LEDGER_TABLE";

/// Partition key (S): the step's scope.
pub const PK: &str = "pk";
/// Sort key (S): the step within its scope.
pub const SK: &str = "sk";
/// TTL attribute (N, epoch seconds).
pub const EXPIRES_AT: &str = "expires_at";
/// Name of the sparse global secondary index listing steps that are not `READY`.
pub const ATTENTION_INDEX: &str = "attention";
/// Partition key of [`ATTENTION_INDEX`] (S): equal to [`STATUS`] while the step is not `READY`.
pub const ATTENTION: &str = "attention";
/// Sort key of [`ATTENTION_INDEX`] (N, epoch milliseconds): last status change.
pub const UPDATED_AT: &str = "updated_at";

/// Name of the sparse global secondary index that spreads the drift audit of `READY` steps
/// over the day: partition key [`AUDIT_HOUR`] (N, 0-23), sort key [`AUDIT_MINUTE`] (N,
/// 0-1439), both derived from the step's key, set while the step is `READY`.
pub const AUDIT_INDEX: &str = "audit";
/// Partition key of [`AUDIT_INDEX`] (N): the hour of the day the step is audited in.
pub const AUDIT_HOUR: &str = "audit_hour";
/// Sort key of [`AUDIT_INDEX`] (N): the minute of the day the step is audited at.
pub const AUDIT_MINUTE: &str = "audit_minute";
/// What the last request to claim the step asked (S, canonical JSON of its fields, no
/// secret values) and its revision (S): enough to re-drive the step without its message.
pub const REQUESTED: &str = "requested";
pub const REQUESTED_REVISION: &str = "requested_revision";
/// A READY step's outbox (L of S): the announcements of outcomes recorded (an update applied
/// or refused, drift found), each written in the same write as its outcome, removed once
/// sent ([`crate::announce::Event`] as JSON). While it is not empty the step stays in the
/// attention index.
pub const OUTBOX: &str = "outbox";
/// Drift found by the audit (S, JSON `{"at": epoch ms, "gone": bool, "changed": [fields]}`).
pub const DRIFT: &str = "drift";
/// When the audit last checked the step (N, epoch ms).
pub const AUDITED_AT: &str = "audited_at";

/// Why and when the step was retired (S, JSON `{"at", "event", "eventId", "time", "reason"}`):
/// the account closed or left the organization.
pub const RETIRED: &str = "retired";
/// The revision of the event that retired the step (S): only a newer request reopens it.
pub const RETIRED_REVISION: &str = "retired_revision";

/// `IN_PROGRESS`, `CREATED`, `READY`, `FAILED` or `RETIRED` (S).
pub const STATUS: &str = "status";
/// The deterministic ClientToken of the current generation (S).
pub const CLIENT_TOKEN: &str = "client_token";
/// The item's token salt (S, 32 hex digits): written by the write that creates the item
/// (`if_not_exists`), never changed; every token of the item is derived from it
/// ([`super::token::client_token`]). Items written before salts existed have none (their
/// tokens are derived without one) until their next claim or retirement gives them one;
/// a stored token is never re-derived.
pub const TOKEN_SALT: &str = "token_salt";
/// Hex SHA-256 of the canonical request that first claimed this generation (S).
pub const REQUEST_HASH: &str = "request_hash";
/// Bumped only by an operator's retry of a failed step (N).
pub const GENERATION: &str = "generation";
/// Number of claims that acquired the step in this generation (N).
pub const ATTEMPT: &str = "attempt";
/// ARN of the created resource (S).
pub const RESOURCE_ARN: &str = "resource_arn";
/// Last error (M) with members [`ERROR_RETRYABLE`], [`ERROR_CODE`], [`ERROR_MESSAGE`].
pub const LAST_ERROR: &str = "last_error";
/// Member of [`LAST_ERROR`] (BOOL).
pub const ERROR_RETRYABLE: &str = "retryable";
/// Member of [`LAST_ERROR`] (S).
pub const ERROR_CODE: &str = "code";
/// Member of [`LAST_ERROR`] (S).
pub const ERROR_MESSAGE: &str = "message";
/// Whether the step's outcome has been announced with an event (BOOL).
pub const ANNOUNCED: &str = "announced";
/// Owner id of the current lease (S, a random UUID per claim).
pub const LEASE_OWNER: &str = "lease_owner";
/// Expiry of the current lease (N, epoch milliseconds).
pub const LEASE_EXPIRES_AT: &str = "lease_expires_at";
/// Time of the first claim of this item (N, epoch milliseconds).
pub const FIRST_ATTEMPT_AT: &str = "first_attempt_at";
/// Ids of the events whose delivery acquired the step, oldest first (L of S).
pub const RECENT_EVENTS: &str = "recent_events";
/// How a `CREATED`/`READY` step got its resource: `created`, `adopted` (an earlier attempt's
/// create whose response was lost) or `pre-existing` (there before us, and what was asked) (S).
pub const ORIGIN: &str = "origin";
/// An attempt of this generation sent (or may have sent) a create call (BOOL). Written by the
/// write that ends an attempt; an attempt that ended without writing counts as one that may
/// have sent it.
pub const CREATE_SENT: &str = "create_sent";
/// The last attempt whose holder recorded how it ended (N).
pub const SETTLED_ATTEMPT: &str = "settled_attempt";
/// Earliest time a retryable step should be tried again (N, epoch milliseconds).
pub const RETRY_AFTER: &str = "retry_after";
/// What the resource was last brought to (S, canonical JSON of the fields requests specified;
/// never a secret value): the applied state, with [`APPLIED_REVISION`].
pub const STATE: &str = "state";
/// The revision ([`crate::revision::Revision`]) of the latest request applied (S).
pub const APPLIED_REVISION: &str = "applied_revision";
/// The desired state (S, [`crate::desired::Desired::to_json`]): per field, the value the
/// newest request naming it asked and that request's revision. Never a secret value.
pub const DESIRED: &str = "desired";
/// Bumped by every change of [`DESIRED`] and by every repair (N): the fence of the merge
/// (read, merge, write conditioned on the version read) and what an update's token is
/// derived from, so that every change and every repair is a new call.
pub const DESIRED_VERSION: &str = "desired_version";
/// The newest revision in [`DESIRED`] (S): what a closure compares with.
pub const DESIRED_REVISION: &str = "desired_revision";
/// The [`DESIRED_VERSION`] the held update brings the resource to (N).
pub const UPDATE_VERSION: &str = "update_version";
/// The [`DESIRED_VERSION`] whose update the service refused for good (N): not retried until
/// a newer request changes the desired state.
pub const REFUSED_VERSION: &str = "refused_version";
/// Items written before the desired state existed: a pending update's state and revision
/// (S). Read once into the desired state, removed by the next write of it.
pub const WANTED: &str = "wanted";
pub const WANTED_REVISION: &str = "wanted_revision";
/// The holder of a pending update's lease (S), its expiry (N, epoch ms) and how many
/// holders took the same desired version (N).
pub const UPDATE_OWNER: &str = "update_owner";
pub const UPDATE_LEASE_EXPIRES_AT: &str = "update_lease_expires_at";
pub const UPDATE_ATTEMPT: &str = "update_attempt";
/// When the pending update was first claimed (N, epoch ms): kept across releases and
/// supersessions by a newer revision, removed when the update ends (applied or refused).
/// The update's grace window and the reconciler's stuck measure run from it.
pub const UPDATE_FIRST_ATTEMPT_AT: &str = "update_first_attempt_at";

/// Creates the ledger table as the SAM template declares it: on-demand billing, keys
/// [`PK`]/[`SK`], the sparse GSIs [`ATTENTION_INDEX`] and [`AUDIT_INDEX`] (all attributes
/// projected) and TTL on
/// [`EXPIRES_AT`]. Waits (up to 60 s) for the table to become `ACTIVE` before enabling TTL.
/// Meant for tests and the local demo; production tables come from `template.yaml`.
pub async fn create_table(client: &Client, name: &str) -> Result<(), LedgerError> {
    let key = |attr: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(attr)
            .key_type(kind)
            .build()
            .map_err(|e| LedgerError::Rejected(format!("key schema: {e}")))
    };
    let def = |attr: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(attr)
            .attribute_type(kind)
            .build()
            .map_err(|e| LedgerError::Rejected(format!("attribute definition: {e}")))
    };
    let index = GlobalSecondaryIndex::builder()
        .index_name(ATTENTION_INDEX)
        .key_schema(key(ATTENTION, KeyType::Hash)?)
        .key_schema(key(UPDATED_AT, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|e| LedgerError::Rejected(format!("index: {e}")))?;
    let audit = GlobalSecondaryIndex::builder()
        .index_name(AUDIT_INDEX)
        .key_schema(key(AUDIT_HOUR, KeyType::Hash)?)
        .key_schema(key(AUDIT_MINUTE, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|e| LedgerError::Rejected(format!("audit index: {e}")))?;
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .attribute_definitions(def(PK, ScalarAttributeType::S)?)
        .attribute_definitions(def(SK, ScalarAttributeType::S)?)
        .attribute_definitions(def(ATTENTION, ScalarAttributeType::S)?)
        .attribute_definitions(def(UPDATED_AT, ScalarAttributeType::N)?)
        .attribute_definitions(def(AUDIT_HOUR, ScalarAttributeType::N)?)
        .attribute_definitions(def(AUDIT_MINUTE, ScalarAttributeType::N)?)
        .global_secondary_indexes(index)
        .global_secondary_indexes(audit)
        .send()
        .await
        .map_err(|e| classify("CreateTable", e))?;

    let mut waited = Duration::ZERO;
    loop {
        let out = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| classify("DescribeTable", e))?;
        let status = out.table().and_then(|t| t.table_status());
        if status == Some(&TableStatus::Active) {
            break;
        }
        if waited >= Duration::from_secs(60) {
            return Err(LedgerError::Unavailable(format!(
                "table {name} not ACTIVE after 60 s (status {status:?})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        waited += Duration::from_millis(500);
    }

    let ttl = TimeToLiveSpecification::builder()
        .attribute_name(EXPIRES_AT)
        .enabled(true)
        .build()
        .map_err(|e| LedgerError::Rejected(format!("TTL specification: {e}")))?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(|e| classify("UpdateTimeToLive", e))?;
    Ok(())
}
