//! Event files (one EventBridge event, an array of events, or an SQS batch whose bodies are
//! events), their checks before anything is sent, and PutEvents in batches.

use std::path::{Path, PathBuf};

use aws_sdk_eventbridge::primitives::{DateTime, DateTimeFormat};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use onboarding::events::{decode, Accept, Decoded, OnboardingRequest, MAX_EVENT_BYTES};
use onboarding::revision::normalize_time;
use serde_json::Value;

use crate::failure::{Failure, Outcome};

/// Most entries PutEvents takes in one call.
pub const MAX_ENTRIES_PER_CALL: usize = 10;
/// Most bytes of entries (as EventBridge counts them) in one PutEvents call.
const MAX_BYTES_PER_CALL: usize = 256 * 1024;
/// Largest event file read (an SQS batch of ten 256 KiB events, with room for its envelope).
const MAX_FILE_BYTES: u64 = 6 * 1024 * 1024;

/// One event found in a file, or why the file (or this part of it) holds none.
pub struct Entry {
    /// Where it came from: `file.json`, `file.json[2]`, `file.json Records[0]`.
    pub label: String,
    pub event: Result<Value, String>,
}

/// An event's own time (its envelope's `time`), published as the entry's `Time`.
#[derive(Clone, Debug, PartialEq)]
pub struct EventTime {
    /// As the functions order requests by it: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub text: String,
    pub at: DateTime,
}

impl EventTime {
    /// The envelope's `time`: RFC 3339 in UTC, as EventBridge writes it
    /// (`2026-11-20T10:15:30Z`, a fraction of a second allowed).
    pub fn parse(time: &str) -> Result<EventTime, String> {
        let text = normalize_time(time).ok_or_else(|| {
            format!("time: expected a UTC time like 2026-11-20T10:15:30Z, got {time:?}")
        })?;
        let at = DateTime::from_str(&text, DateTimeFormat::DateTime)
            .map_err(|e| format!("time: {time:?} is not a valid RFC 3339 time: {e}"))?;
        Ok(EventTime { text, at })
    }
}

/// An event ready for PutEvents, kept as the file had it.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub source: String,
    pub detail_type: String,
    /// The event's own time, sent as `Time`; `None` (an event made here, not replayed):
    /// EventBridge stamps the time of the call.
    pub time: Option<EventTime>,
    /// `detail` as compact JSON.
    pub detail: String,
    pub resources: Vec<String>,
    /// The decoded request, when the functions would act on it.
    pub request: Option<OnboardingRequest>,
    /// What the functions will do with it (`onboard account ...`, `ignored: ...`).
    pub effect: String,
}

impl Prepared {
    /// The entry size EventBridge counts against its limits.
    fn size(&self) -> usize {
        // A `Time` counts 14 bytes.
        self.time.as_ref().map_or(0, |_| 14)
            + self.source.len()
            + self.detail_type.len()
            + self.detail.len()
            + self.resources.iter().map(String::len).sum::<usize>()
    }

    pub fn account_id(&self) -> Option<&str> {
        self.request.as_ref().map(|r| r.account_id.as_str())
    }

    fn entry(&self, bus: &str) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(bus)
            .source(&self.source)
            .detail_type(&self.detail_type)
            .detail(&self.detail)
            .set_time(self.time.as_ref().map(|t| t.at))
            .set_resources((!self.resources.is_empty()).then(|| self.resources.clone()))
            .build()
    }
}

/// The event files at `path`: the file itself, or a directory's `*.json` files (not
/// recursive), in name order.
pub fn files(path: &Path) -> Outcome<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).map_err(|e| {
        Failure::usage(format!("cannot read {}: {e}", path.display()))
            .hint("pass an event file or a directory of *.json event files, e.g. events/")
    })?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let listing = std::fs::read_dir(path)
        .map_err(|e| Failure::usage(format!("cannot list {}: {e}", path.display())))?;
    let mut found = Vec::new();
    for item in listing {
        let item =
            item.map_err(|e| Failure::runtime(format!("cannot list {}: {e}", path.display())))?;
        let p = item.path();
        if p.extension().is_some_and(|ext| ext == "json") && p.is_file() {
            found.push(p);
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(
            Failure::refused(format!("{} holds no *.json files", path.display()))
                .hint("pass an event file or a directory of *.json event files"),
        );
    }
    Ok(found)
}

/// The events of one file. A file that cannot be read or parsed is one entry with its error.
pub fn load(path: &Path) -> Vec<Entry> {
    let name = path.display().to_string();
    let bad = |reason: String| {
        vec![Entry {
            label: name.clone(),
            event: Err(reason),
        }]
    };
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE_BYTES => {
            return bad(format!(
                "{} bytes is more than an event file holds (at most {MAX_FILE_BYTES})",
                m.len()
            ))
        }
        Ok(_) => {}
        Err(e) => return bad(format!("cannot read: {e}")),
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return bad(format!("cannot read: {e}")),
    };
    let value: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return bad(format!("not valid JSON: {e}")),
    };
    match value {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, event)| Entry {
                label: format!("{name}[{i}]"),
                event: Ok(event),
            })
            .collect(),
        Value::Object(map) if map.contains_key("Records") => match map.get("Records") {
            Some(Value::Array(records)) => records
                .iter()
                .enumerate()
                .map(|(i, record)| sqs_entry(&name, i, record))
                .collect(),
            _ => bad("\"Records\" is not an array (expected an SQS batch)".into()),
        },
        other => vec![Entry {
            label: name,
            event: Ok(other),
        }],
    }
}

fn sqs_entry(name: &str, i: usize, record: &Value) -> Entry {
    let id = record
        .get("messageId")
        .and_then(Value::as_str)
        .map(|id| format!(" ({id})"))
        .unwrap_or_default();
    let label = format!("{name} Records[{i}]{id}");
    let event = match record.get("body") {
        Some(Value::String(body)) => serde_json::from_str(body)
            .map_err(|e| format!("the SQS body is not an event as JSON: {e}")),
        _ => Err("an SQS record without a string \"body\"".to_owned()),
    };
    Entry { label, event }
}

/// Why an event without a time is not published again.
pub const NO_TIME: &str = "time: missing; an event is published again with its own time \
     (EventBridge's Time), so that it keeps its place among the requests for its steps, and \
     one without a time would get the time of publishing and pass every request made since. \
     Add the time the request was made (\"time\": \"2026-11-20T10:15:30Z\", UTC)";

/// [`prepare`] for an event published again (`replay`, `retry --event`): it must carry its
/// own time, which the entry keeps.
pub fn prepare_again(event: &Value, accept: &Accept) -> Result<Prepared, String> {
    let prepared = prepare(event, accept)?;
    if prepared.time.is_none() {
        return Err(NO_TIME.to_owned());
    }
    Ok(prepared)
}

/// Checks one event as PutEvents and the functions will see it; `Err` says why it cannot
/// (or should not) be published. The event's `time`, if any, is kept for the entry.
pub fn prepare(event: &Value, accept: &Accept) -> Result<Prepared, String> {
    let map = event
        .as_object()
        .ok_or("not a JSON object (expected an EventBridge event)")?;
    let text = |key: &str| -> Result<String, String> {
        match map.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
            Some(_) => Err(format!("{key}: expected a non-empty string")),
            None => Err(format!("{key}: missing (expected an EventBridge event)")),
        }
    };
    let source = text("source")?;
    let detail_type = text("detail-type")?;
    let detail = match map.get("detail") {
        Some(d @ Value::Object(_)) => d.to_string(),
        Some(_) => return Err("detail: expected a JSON object".into()),
        None => return Err("detail: missing (expected an EventBridge event)".into()),
    };
    let resources = match map.get("resources") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|r| r.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or("resources: expected an array of strings")?,
        Some(_) => return Err("resources: expected an array of strings".into()),
    };
    let time = match map.get("time") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(EventTime::parse(t)?),
        Some(_) => return Err("time: expected a string like 2026-11-20T10:15:30Z".into()),
    };

    // EventBridge assigns new ids; the decoder only needs one to be present.
    let mut probe = map.clone();
    if !probe.get("id").is_some_and(Value::is_string) {
        probe.insert("id".into(), Value::String("replayed".into()));
    }
    let decoded = decode(&Value::Object(probe), accept)
        .map_err(|e| format!("the functions would reject it: {e}"))?;
    let (request, effect) = match decoded {
        Decoded::Request(r) => {
            let mut effect = format!("onboard account {}", r.account_id);
            if let Some(p) = &r.web_identity_provider {
                effect.push_str(&format!(" (web identity provider {})", p.provider_name));
            }
            (Some(r), effect)
        }
        Decoded::Ignored { reason } => (None, format!("ignored by the functions: {reason}")),
        Decoded::Offboard(r) => (None, format!("offboard: {}", r.reason())),
    };
    if source.starts_with("aws.") {
        let instead = match &request {
            Some(r) => format!(
                "publish an {:?} event for account {} instead (or start a replay of the \
                 bus's archive)",
                accept.detail_type, r.account_id
            ),
            None => "it would be ignored anyway".to_owned(),
        };
        return Err(format!(
            "source {source}: EventBridge accepts no aws.* source from PutEvents; {instead}"
        ));
    }
    let prepared = Prepared {
        source,
        detail_type,
        time,
        detail,
        resources,
        request,
        effect,
    };
    if prepared.size() > MAX_EVENT_BYTES {
        return Err(format!(
            "{} bytes exceeds EventBridge's {MAX_EVENT_BYTES}-byte event limit",
            prepared.size()
        ));
    }
    Ok(prepared)
}

/// What PutEvents said about one entry.
#[derive(Clone, Debug)]
pub enum Sent {
    Accepted { event_id: String },
    Failed { code: String, message: String },
}

/// Publishes `events` to `bus`, at most ten (and 256 KiB) per call; one result per event,
/// in order. A call that fails as a whole fails each of its entries.
pub async fn put_events(
    client: &aws_sdk_eventbridge::Client,
    bus: &str,
    events: &[Prepared],
) -> Vec<Sent> {
    let mut results = Vec::with_capacity(events.len());
    let mut start = 0;
    while start < events.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < events.len()
            && end - start < MAX_ENTRIES_PER_CALL
            && (end == start || bytes + events[end].size() <= MAX_BYTES_PER_CALL)
        {
            bytes += events[end].size();
            end += 1;
        }
        let chunk = &events[start..end];
        let call = client
            .put_events()
            .set_entries(Some(chunk.iter().map(|e| e.entry(bus)).collect()))
            .send()
            .await;
        match call {
            Ok(out) => {
                let entries = out.entries();
                for i in 0..chunk.len() {
                    results.push(match entries.get(i) {
                        Some(e) if e.error_code().is_none() => match e.event_id() {
                            Some(id) => Sent::Accepted {
                                event_id: id.to_owned(),
                            },
                            None => Sent::Failed {
                                code: "NoEventId".into(),
                                message: "PutEvents returned no event id".into(),
                            },
                        },
                        Some(e) => Sent::Failed {
                            code: e.error_code().unwrap_or_default().to_owned(),
                            message: e.error_message().unwrap_or_default().to_owned(),
                        },
                        None => Sent::Failed {
                            code: "NoResult".into(),
                            message: "PutEvents returned no result for this entry".into(),
                        },
                    });
                }
            }
            Err(err) => {
                let message = crate::failure::concise(
                    &aws_sdk_eventbridge::error::DisplayErrorContext(&err).to_string(),
                );
                let code = aws_sdk_eventbridge::error::ProvideErrorMetadata::code(&err)
                    .unwrap_or("PutEventsFailed")
                    .to_owned();
                for _ in chunk {
                    results.push(Sent::Failed {
                        code: code.clone(),
                        message: message.clone(),
                    });
                }
            }
        }
        start = end;
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(account: &str) -> Value {
        json!({
            "version": "0", "id": "e-1", "source": "identity-onboarding",
            "detail-type": "Account Onboarding Requested", "account": "111111111111",
            "time": "2026-11-20T10:15:30Z", "region": "us-east-1", "resources": [],
            "detail": { "schemaVersion": "1", "accountId": account }
        })
    }

    #[test]
    fn a_request_is_prepared_as_the_file_has_it() {
        let p = prepare(&request("222222222222"), &Accept::default()).expect("valid");
        assert_eq!(p.source, "identity-onboarding");
        assert_eq!(p.detail_type, "Account Onboarding Requested");
        assert_eq!(
            serde_json::from_str::<Value>(&p.detail).ok(),
            Some(json!({ "schemaVersion": "1", "accountId": "222222222222" }))
        );
        assert_eq!(p.account_id(), Some("222222222222"));
        // Without an id (EventBridge assigns one) it is still valid.
        let mut no_id = request("222222222222");
        if let Some(m) = no_id.as_object_mut() {
            m.remove("id");
        }
        assert!(prepare(&no_id, &Accept::default()).is_ok());
    }

    #[test]
    fn the_entry_keeps_the_events_own_time() {
        let p = prepare_again(&request("222222222222"), &Accept::default()).expect("valid");
        let time = p.time.clone().expect("the event's time");
        assert_eq!(time.text, "2026-11-20T10:15:30.000Z");
        let entry = p.entry("bus");
        assert_eq!(entry.time(), Some(&time.at));
        assert_eq!(time.at.secs(), 1_795_169_730, "2026-11-20T10:15:30Z");
        // A fraction of a second is kept, to the millisecond.
        let mut fraction = request("222222222222");
        fraction["time"] = json!("2026-11-20T10:15:30.25Z");
        let p = prepare_again(&fraction, &Accept::default()).expect("valid");
        let at = p.entry("bus").time().copied().expect("time");
        assert_eq!((at.secs(), at.subsec_nanos()), (1_795_169_730, 250_000_000));
    }

    #[test]
    fn an_event_published_again_needs_a_time_that_is_one() {
        let accept = Accept::default();
        let mut timeless = request("222222222222");
        if let Some(m) = timeless.as_object_mut() {
            m.remove("time");
        }
        let why = prepare_again(&timeless, &accept).expect_err("no time");
        assert!(why.starts_with("time: missing"), "{why}");
        // A new request (backfill) has none, and EventBridge stamps it.
        let fresh = prepare(&timeless, &accept).expect("a new request");
        assert!(fresh.time.is_none() && fresh.entry("bus").time().is_none());
        for bad in [
            json!("2026-11-20"),
            json!("2026-11-20T10:15:30+01:00"),
            json!("2026-13-20T10:15:30Z"),
            json!("2026-02-30T10:15:30Z"),
            json!(1795688130),
        ] {
            let mut event = request("222222222222");
            event["time"] = bad.clone();
            let why = prepare(&event, &accept).expect_err("not a time");
            assert!(why.starts_with("time: "), "{bad}: {why}");
        }
    }

    #[test]
    fn events_that_cannot_or_should_not_be_published_say_why() {
        let accept = Accept::default();
        let reason = |v: Value| prepare(&v, &accept).err().unwrap_or_default();
        assert!(reason(json!([1])).contains("not a JSON object"));
        assert!(reason(json!({ "source": "x", "detail": {} })).contains("detail-type"));
        assert!(reason(request("12ab")).contains("accountId"));
        let mut ct = request("222222222222");
        ct["source"] = json!("aws.controltower");
        ct["detail-type"] = json!("AWS Service Event via CloudTrail");
        ct["detail"] = json!({
            "eventName": "CreateManagedAccount",
            "serviceEventDetails": { "createManagedAccountStatus": {
                "state": "SUCCEEDED",
                "account": { "accountId": "333333333333", "accountName": "x" } } }
        });
        let why = reason(ct);
        assert!(
            why.contains("aws.*") && why.contains("333333333333"),
            "{why}"
        );
    }
}
