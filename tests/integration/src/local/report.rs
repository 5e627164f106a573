//! Reading the outcome back: the ledger as a table per account and step, and the counters
//! that prove idempotency (deliveries vs create calls vs resources, from the emulator).

use identity_emulator::Counters;
use onboarding::ledger::Record;
use serde_json::Value;

use super::deliver::Delivery;
use super::stack::Item;

/// The create operation of each step, in the functions' order.
pub const CREATE_OPERATIONS: [(&str, &str); 3] = [
    ("identity-center-instance", "CreateInstance"),
    ("approval-identity-source", "CreateIdentitySource"),
    ("web-identity-provider", "CreateIdentityProvider"),
];

/// One ledger item, as shown to people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    /// The item's partition key (`account#<id>` or `org#<instance ARN>`).
    pub scope: String,
    /// The item's sort key (the step, with the portal and provider for a web identity provider).
    pub sort_key: String,
    /// The account id, or `organization` for the organization's step.
    pub account: String,
    /// The step (`web-identity-provider` with the provider's name).
    pub step: String,
    pub status: String,
    pub arn: String,
    pub client_token: String,
    /// What the item's tokens are derived from.
    pub token_salt: Option<String>,
    pub attempts: u32,
}

/// The ledger items as rows (every step; not a departure's mark), sorted by account and step.
pub fn ledger_rows(items: &[Item]) -> Result<Vec<LedgerRow>, String> {
    let mut rows = items
        .iter()
        .map(|item| {
            let record = Record::from_item(item).map_err(|e| format!("ledger item: {e}"))?;
            let account = record
                .account_id
                .clone()
                .unwrap_or_else(|| "organization".to_string());
            let step = match record.key.step.split_once('#') {
                Some((step, rest)) => {
                    let provider = rest.rsplit('#').next().unwrap_or(rest);
                    format!("{step} ({provider})")
                }
                None => record.key.step.clone(),
            };
            // A departure's mark is bookkeeping, not a step.
            if onboarding::steps::Known::is_departure_mark(&record.key) {
                return Ok(None);
            }
            Ok(Some(LedgerRow {
                scope: record.key.scope.clone(),
                sort_key: record.key.step.clone(),
                account,
                step,
                status: record.status.as_str().to_string(),
                arn: record.resource_arn.clone().unwrap_or_else(|| "-".into()),
                client_token: record.token.clone(),
                token_salt: record.token_salt.clone(),
                attempts: record.attempt,
            }))
        })
        .filter_map(Result::transpose)
        .collect::<Result<Vec<_>, String>>()?;
    rows.sort_by(|a, b| (&a.account, &a.step).cmp(&(&b.account, &b.step)));
    Ok(rows)
}

/// `account | step | status | ARN | ClientToken | attempts`.
pub fn ledger_table(rows: &[LedgerRow]) -> String {
    table(
        &[
            "account",
            "step",
            "status",
            "ARN",
            "ClientToken",
            "attempts",
        ],
        &rows
            .iter()
            .map(|r| {
                vec![
                    r.account.clone(),
                    r.step.clone(),
                    r.status.clone(),
                    r.arn.clone(),
                    r.client_token.clone(),
                    r.attempts.to_string(),
                ]
            })
            .collect::<Vec<_>>(),
    )
}

/// Resources the emulator holds (the seeded organization instance and portals excluded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub instances: u64,
    pub identity_sources: u64,
    pub identity_providers: u64,
}

impl Resources {
    pub fn from_state(state: &Value) -> Resources {
        let mut r = Resources::default();
        let Some(accounts) = state.get("accounts").and_then(Value::as_object) else {
            return r;
        };
        let count = |v: &Value, kind: &str, keep: &dyn Fn(&Value) -> bool| {
            v.get(kind)
                .and_then(Value::as_array)
                .map_or(0, |list| list.iter().filter(|x| keep(x)).count() as u64)
        };
        for account in accounts.values() {
            r.instances += count(account, "instances", &|i| {
                i.get("organization").and_then(Value::as_bool) != Some(true)
            });
            r.identity_sources += count(account, "identity_sources", &|_| true);
            r.identity_providers += count(account, "identity_providers", &|_| true);
        }
        r
    }

    /// Resources made by `operation`.
    pub fn of(&self, operation: &str) -> u64 {
        match operation {
            "CreateInstance" => self.instances,
            "CreateIdentitySource" => self.identity_sources,
            "CreateIdentityProvider" => self.identity_providers,
            _ => 0,
        }
    }
}

/// Deliveries of one round: (invocations, records delivered).
pub fn delivered(deliveries: &[Delivery]) -> (usize, usize) {
    (
        deliveries.iter().map(Delivery::invocations).sum(),
        deliveries.iter().map(Delivery::records_delivered).sum(),
    )
}

/// The idempotency counters: deliveries per round, create calls per operation and round (the
/// emulator's counters after each round), new resources vs replays, resources held.
pub fn idempotency_table(rounds: &[(&[Delivery], &Counters)], resources: &Resources) -> String {
    let mut headers = vec!["".to_string()];
    for i in 1..=rounds.len() {
        headers.push(format!("round {i}"));
    }
    headers.extend(["total".to_string(), "resources".to_string()]);
    let mut rows = Vec::new();

    let (mut total_inv, mut total_rec) = (0, 0);
    let mut inv = vec!["invocations (with retries)".to_string()];
    let mut rec = vec!["event deliveries (records)".to_string()];
    for (deliveries, _) in rounds {
        let (i, r) = delivered(deliveries);
        total_inv += i;
        total_rec += r;
        inv.push(i.to_string());
        rec.push(r.to_string());
    }
    inv.extend([total_inv.to_string(), "".into()]);
    rec.extend([total_rec.to_string(), "".into()]);
    rows.push(inv);
    rows.push(rec);

    for (_, operation) in CREATE_OPERATIONS {
        let mut calls = vec![format!("{operation} calls")];
        let mut created = vec![format!("{operation} new resources")];
        let (mut prev_calls, mut prev_created) = (0, 0);
        for (_, counters) in rounds {
            calls.push(
                (counters.calls(operation) - prev_calls.min(counters.calls(operation))).to_string(),
            );
            created.push(
                (counters.created(operation) - prev_created.min(counters.created(operation)))
                    .to_string(),
            );
            prev_calls = counters.calls(operation);
            prev_created = counters.created(operation);
        }
        calls.extend([prev_calls.to_string(), "".into()]);
        created.extend([
            prev_created.to_string(),
            resources.of(operation).to_string(),
        ]);
        rows.push(calls);
        rows.push(created);
    }
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    table(&headers, &rows)
}

/// A plain text table: columns padded, a rule under the header.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths.get(i).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(headers.to_vec())];
    out.push(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-"),
    );
    for row in rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let t = table(
            &["a", "bb"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["q".into(), "22".into()],
            ],
        );
        assert_eq!(t, "a   | bb\n----+---\nxyz | 1\nq   | 22");
    }

    #[test]
    fn resources_leave_out_the_organization_instance() {
        let state = serde_json::json!({"accounts": {
            "111111111111": {"instances": [{"organization": true}], "identity_sources": [{}],
                             "portals": [], "identity_providers": []},
            "222222222222": {"instances": [{"organization": false}], "identity_sources": [],
                             "portals": [{}], "identity_providers": [{}, {}]}
        }});
        assert_eq!(
            Resources::from_state(&state),
            Resources {
                instances: 1,
                identity_sources: 1,
                identity_providers: 2
            }
        );
    }
}
