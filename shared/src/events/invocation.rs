//! The invocation payload: one EventBridge event (delivered directly by a rule) or an SQS
//! batch (`{"Records":[...]}`, standard or FIFO queue).

use serde_json::{Map, Value};

use super::json::{echo, kind};
use super::{DecodeError, MAX_PAYLOAD_BYTES};

/// What the function was invoked with.
#[derive(Clone, Debug, PartialEq)]
pub enum Invocation {
    /// An EventBridge event, still undecoded: pass it to [`super::decode`].
    EventBridge(Value),
    /// An SQS batch; each body is decoded with [`super::decode_body`].
    Sqs(Vec<SqsRecord>),
}

/// One SQS record of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqsRecord {
    /// The `itemIdentifier` to report in `batchItemFailures`.
    pub message_id: String,
    /// The message body (for an EventBridge target: the whole event as JSON).
    pub body: String,
    /// `attributes.MessageGroupId` (FIFO queues).
    pub group_id: Option<String>,
    /// `attributes.ApproximateReceiveCount` (1 on the first delivery; 1 when absent).
    pub receive_count: u32,
    /// The queue is FIFO (`eventSourceARN` ends with `.fifo`; without an `eventSourceARN`,
    /// a record carrying a `MessageGroupId` is taken as FIFO).
    pub fifo: bool,
    /// `receiptHandle`: needed to delay the record's next delivery.
    pub receipt_handle: Option<String>,
    /// `eventSourceARN`: the queue the record came from.
    pub queue_arn: Option<String>,
}

/// Classifies an invocation payload.
///
/// * `{"Records": [...]}` whose records all have `eventSource` `aws:sqs` -> [`Invocation::Sqs`];
/// * an object with `source`, `detail-type` and `detail` -> [`Invocation::EventBridge`]
///   (the event itself is checked by [`super::decode`]);
/// * anything else -> an error.
///
/// Every SQS record needs a non-empty string `messageId` and a string `body`: a record that
/// cannot be named cannot be reported in `batchItemFailures`, so a malformed record fails the
/// **whole payload** (the function then returns an error, the whole batch is retried and
/// ends in the queue's dead-letter queue; it is never silently dropped). Problems with a
/// body's content are not decided here: they belong to that record alone ([`super::decode_body`]).
pub fn invocation(payload: Value) -> Result<Invocation, DecodeError> {
    let mut map = match payload {
        Value::Object(map) => map,
        other => {
            return Err(DecodeError::new(format!(
                "payload: expected a JSON object (an EventBridge event or an SQS batch), got {}",
                kind(&other)
            )))
        }
    };
    if let Some(records) = map.remove("Records") {
        return sqs(records).map(Invocation::Sqs);
    }
    let missing: Vec<&str> = ["source", "detail-type", "detail"]
        .into_iter()
        .filter(|k| !map.contains_key(*k))
        .collect();
    if missing.is_empty() {
        Ok(Invocation::EventBridge(Value::Object(map)))
    } else {
        Err(DecodeError::new(format!(
            "payload: neither an SQS batch (no \"Records\") nor an EventBridge event (missing {})",
            missing.join(", ")
        )))
    }
}

/// [`invocation`] for raw bytes: at most [`MAX_PAYLOAD_BYTES`] (Lambda's synchronous payload
/// limit), valid UTF-8, valid JSON (serde_json's recursion limit refuses deep nesting).
pub fn invocation_from_slice(bytes: &[u8]) -> Result<Invocation, DecodeError> {
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(DecodeError::new(format!(
            "payload: {} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit",
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        DecodeError::new(format!(
            "payload: not valid UTF-8 (at byte {})",
            e.valid_up_to()
        ))
    })?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| DecodeError::new(format!("payload: not valid JSON: {e}")))?;
    invocation(value)
}

fn sqs(records: Value) -> Result<Vec<SqsRecord>, DecodeError> {
    let records = match records {
        Value::Array(records) => records,
        other => {
            return Err(DecodeError::new(format!(
                "Records: expected an array, got {}",
                kind(&other)
            )))
        }
    };
    let mut out = Vec::with_capacity(records.len());
    for (i, record) in records.into_iter().enumerate() {
        out.push(sqs_record(i, record)?);
    }
    Ok(out)
}

fn take_string(
    map: &mut Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Option<String>, DecodeError> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(DecodeError::new(format!(
            "{path}.{key}: expected a string, got {}",
            kind(&other)
        ))),
    }
}

fn sqs_record(i: usize, record: Value) -> Result<SqsRecord, DecodeError> {
    let path = format!("Records[{i}]");
    let mut map = match record {
        Value::Object(map) => map,
        other => {
            return Err(DecodeError::new(format!(
                "{path}: expected an object, got {}",
                kind(&other)
            )))
        }
    };
    match take_string(&mut map, &path, "eventSource")? {
        Some(s) if s == "aws:sqs" => {}
        Some(s) => {
            return Err(DecodeError::new(format!(
                "{path}.eventSource: expected \"aws:sqs\", got {}",
                echo(&s)
            )))
        }
        None => {
            return Err(DecodeError::new(format!(
                "{path}.eventSource: missing (expected \"aws:sqs\")"
            )))
        }
    }
    let unreportable = "a record without a usable messageId cannot be reported in batchItemFailures, so the whole batch is refused (and retried)";
    let message_id = match take_string(&mut map, &path, "messageId") {
        Ok(Some(id)) if !id.is_empty() => id,
        Ok(Some(_)) => {
            return Err(DecodeError::new(format!(
                "{path}.messageId: empty; {unreportable}"
            )))
        }
        Ok(None) => {
            return Err(DecodeError::new(format!(
                "{path}.messageId: missing; {unreportable}"
            )))
        }
        Err(e) => return Err(DecodeError::new(format!("{}; {unreportable}", e.reason))),
    };
    let body = take_string(&mut map, &path, "body")?
        .ok_or_else(|| DecodeError::new(format!("{path}.body: missing")))?;
    let arn = take_string(&mut map, &path, "eventSourceARN")?;
    let receipt_handle = take_string(&mut map, &path, "receiptHandle")?;
    let (group_id, receive_count) = match map.remove("attributes") {
        None | Some(Value::Null) => (None, 1),
        Some(Value::Object(mut attributes)) => {
            let at = format!("{path}.attributes");
            let group_id = take_string(&mut attributes, &at, "MessageGroupId")?;
            let receive_count = match take_string(&mut attributes, &at, "ApproximateReceiveCount")?
            {
                None => 1,
                Some(n) => n.parse::<u32>().map_err(|_| {
                    DecodeError::new(format!(
                        "{at}.ApproximateReceiveCount: expected a decimal count, got {}",
                        echo(&n)
                    ))
                })?,
            };
            (group_id, receive_count)
        }
        Some(other) => {
            return Err(DecodeError::new(format!(
                "{path}.attributes: expected an object, got {}",
                kind(&other)
            )))
        }
    };
    let fifo = match &arn {
        Some(arn) => arn.ends_with(".fifo"),
        None => group_id.is_some(),
    };
    Ok(SqsRecord {
        message_id,
        body,
        group_id,
        receive_count,
        fifo,
        receipt_handle,
        queue_arn: arn,
    })
}
