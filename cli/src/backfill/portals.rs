//! The mapping file (`--portals`): each account's web identity provider, checked as the
//! functions decode a request before anything is read or sent.

use std::collections::BTreeMap;
use std::path::Path;

use onboarding::events::SCHEMA_VERSION;
use serde_json::{json, Map, Value};

use crate::context::{parse_account, Context};
use crate::failure::{Failure, Outcome};
use crate::publish;
use crate::table::shorten;

/// One account's web identity provider from the mapping file, already validated.
#[derive(Clone, Debug)]
pub struct PortalEntry {
    /// Where it is in the file: `line 3` (JSON lines) or `entry 3` (a JSON array).
    pub label: String,
    /// The event's `webIdentityProvider` object.
    pub provider: Map<String, Value>,
}

/// The event of an onboarding request for `account`, as the CLI publishes it.
pub fn request_event(
    ctx: &Context,
    account: &str,
    name: Option<&str>,
    provider: Option<&Map<String, Value>>,
) -> Value {
    let mut detail = Map::new();
    detail.insert("schemaVersion".into(), json!(SCHEMA_VERSION));
    detail.insert("accountId".into(), json!(account));
    if let Some(name) = name {
        detail.insert("accountName".into(), json!(name));
    }
    if let Some(p) = provider {
        detail.insert("webIdentityProvider".into(), Value::Object(p.clone()));
    }
    json!({
        "id": "onboarding-backfill",
        "source": ctx.accept.source,
        "detail-type": ctx.accept.detail_type,
        "detail": detail,
    })
}

/// The decoder's reason with the field named as the mapping file names it.
pub fn field_reason(reason: &str) -> String {
    let reason = reason
        .strip_prefix("the functions would reject it: ")
        .unwrap_or(reason);
    reason
        .replace("detail.webIdentityProvider.", "")
        .replace("detail.webIdentityProvider", "(the entry)")
        .replace("detail.", "")
}

/// Reads and validates the mapping file: every entry is turned into the onboarding request
/// it stands for and run through the decoder the functions use. Any invalid entry refuses
/// the whole file (exit 3), naming the line (or entry) and the field.
pub fn load_portals(path: &Path, ctx: &Context) -> Outcome<BTreeMap<String, PortalEntry>> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::usage(format!("cannot read the mapping file {name}: {e}"))
            .hint("pass --portals FILE: JSON lines or a JSON array of {accountId, portalArn, providerName, providerType, details, secretId, tags}")
    })?;
    let mut raw: Vec<(String, Result<Value, String>)> = Vec::new();
    if text.trim_start().starts_with('[') {
        match serde_json::from_str::<Vec<Value>>(&text) {
            Ok(items) => raw.extend(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (format!("entry {}", i + 1), Ok(v))),
            ),
            Err(e) => raw.push(("the array".to_owned(), Err(format!("not valid JSON: {e}")))),
        }
    } else {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            raw.push((
                format!("line {}", i + 1),
                serde_json::from_str::<Value>(line).map_err(|e| format!("not valid JSON: {e}")),
            ));
        }
    }

    let mut entries: BTreeMap<String, PortalEntry> = BTreeMap::new();
    let mut errors: Vec<String> = Vec::new();
    for (label, value) in raw {
        match portal_entry(ctx, &label, value) {
            Ok((account, entry)) => {
                if let Some(earlier) = entries.get(&account) {
                    errors.push(format!(
                        "{label}: accountId: {account} is already mapped by {} (one provider per account)",
                        earlier.label
                    ));
                } else {
                    entries.insert(account, entry);
                }
            }
            Err(why) => errors.push(format!("{label}: {why}")),
        }
    }
    if !errors.is_empty() {
        let shown: Vec<&str> = errors.iter().take(20).map(String::as_str).collect();
        let more = errors.len().saturating_sub(shown.len());
        return Err(Failure::refused(format!(
            "{} invalid entr{} in the mapping file {name}, nothing was published: {}{}",
            errors.len(),
            if errors.len() == 1 { "y" } else { "ies" },
            shown.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        ))
        .hint(
            "fix the entries named (each is the event's webIdentityProvider plus accountId, \
             checked as the functions decode requests; see `onboarding backfill --help`), \
             then run the command again",
        ));
    }
    if entries.is_empty() {
        return Err(
            Failure::refused(format!("the mapping file {name} has no entries")).hint(
                "leave --portals out to onboard the accounts without a web identity provider",
            ),
        );
    }
    Ok(entries)
}

pub fn portal_entry(
    ctx: &Context,
    label: &str,
    value: Result<Value, String>,
) -> Result<(String, PortalEntry), String> {
    let value = value?;
    let Value::Object(mut map) = value else {
        return Err("expected a JSON object {accountId, portalArn, providerName, ...}".into());
    };
    let account = match map.remove("accountId") {
        Some(Value::String(s)) => s,
        Some(_) => return Err("accountId: expected a string of 12 digits".into()),
        None => return Err("accountId: missing".into()),
    };
    if parse_account(&account).is_err() {
        return Err(format!(
            "accountId: expected 12 digits, got {}",
            shorten(&format!("{account:?}"), 40)
        ));
    }
    // Unknown fields (and secrets) are refused by the decoder, as in an event.
    let event = request_event(ctx, &account, None, Some(&map));
    publish::prepare(&event, &ctx.accept).map_err(|why| field_reason(&why))?;
    Ok((
        account,
        PortalEntry {
            label: label.to_owned(),
            provider: map,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_paths_are_named_as_the_mapping_file_names_them() {
        assert_eq!(
            field_reason("the functions would reject it: detail.webIdentityProvider.providerType: expected one of SAML"),
            "providerType: expected one of SAML"
        );
        assert_eq!(
            field_reason("detail.accountId: expected 12 digits"),
            "accountId: expected 12 digits"
        );
    }
}
