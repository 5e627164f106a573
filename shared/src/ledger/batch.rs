//! Many steps' statuses at once (BatchGetItem): what `onboarding backfill` reads to plan.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

use super::schema::{PK, SK, STATUS};
use super::{error, Ledger, LedgerError, Status, StepKey};

/// Most keys BatchGetItem takes in one call.
const MAX_KEYS_PER_READ: usize = 100;
/// Rounds of retrying a BatchGetItem's UnprocessedKeys before giving up.
const MAX_READ_ROUNDS: u32 = 10;

/// What [`Ledger::statuses`] read.
#[derive(Debug, Default)]
pub struct Statuses {
    /// The status of each key that has an item (a key without one is absent).
    pub steps: HashMap<StepKey, Status>,
    /// BatchGetItem calls made.
    pub calls: usize,
}

impl Ledger {
    /// The status of each of `keys` (absent: no item), by consistent BatchGetItem of at most
    /// 100 keys a call, retrying UnprocessedKeys with backoff. A key named twice is read once;
    /// `progress(done, total)` is told after each call's keys are read (of the distinct ones).
    pub async fn statuses(
        &self,
        keys: &[StepKey],
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Statuses, LedgerError> {
        // BatchGetItem refuses a request that names a key twice.
        let mut seen = HashSet::new();
        let unique: Vec<&StepKey> = keys.iter().filter(|k| seen.insert(*k)).collect();
        let mut read = Statuses::default();
        let mut done = 0;
        for chunk in unique.chunks(MAX_KEYS_PER_READ) {
            let mut pending = KeysAndAttributes::builder()
                .set_keys(Some(
                    chunk.iter().map(|k| Self::key_attributes(k)).collect(),
                ))
                .projection_expression("#pk, #sk, #st")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_names("#st", STATUS)
                .consistent_read(true)
                .build()
                .map_err(|e| LedgerError::Rejected(format!("BatchGetItem request: {e}")))?;
            let mut round = 0;
            loop {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(self.table.as_ref(), pending.clone())
                    .send()
                    .await
                    .map_err(|err| error::classify("BatchGetItem", err))?;
                read.calls += 1;
                for item in out
                    .responses()
                    .and_then(|r| r.get(self.table.as_ref()))
                    .into_iter()
                    .flatten()
                {
                    let text = |name: &str| match item.get(name) {
                        Some(AttributeValue::S(s)) => Some(s.clone()),
                        _ => None,
                    };
                    let (Some(scope), Some(step), Some(status)) =
                        (text(PK), text(SK), text(STATUS))
                    else {
                        continue;
                    };
                    let status = status.parse::<Status>().map_err(|e| LedgerError::Corrupt {
                        key: format!("{scope}/{step}"),
                        reason: e.to_string(),
                    })?;
                    read.steps.insert(StepKey { scope, step }, status);
                }
                match out
                    .unprocessed_keys()
                    .and_then(|u| u.get(self.table.as_ref()))
                {
                    Some(rest) if !rest.keys().is_empty() => {
                        round += 1;
                        if round >= MAX_READ_ROUNDS {
                            return Err(LedgerError::Unavailable(format!(
                                "BatchGetItem: {} keys still unprocessed after {round} rounds (the table is throttled)",
                                rest.keys().len()
                            )));
                        }
                        tokio::time::sleep(unprocessed_backoff(round)).await;
                        pending = rest.clone();
                    }
                    _ => break,
                }
            }
            done += chunk.len();
            progress(done, unique.len());
        }
        Ok(read)
    }
}

/// The wait before retrying unprocessed keys in `round` (1, 2, ...): 50 ms, 100 ms, ... up
/// to 3.2 s, with jitter down to half.
fn unprocessed_backoff(round: u32) -> Duration {
    let base = Duration::from_millis(50u64 << (round.max(1) - 1).min(6));
    crate::clock::jitter(base, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unprocessed_keys_back_off_up_to_a_cap() {
        for round in 1..=12 {
            let base = 50u64 << (round - 1).min(6);
            let wait = unprocessed_backoff(round).as_millis() as u64;
            assert!(wait <= base && wait >= base / 2, "round {round}: {wait} ms");
        }
        assert!(unprocessed_backoff(20) <= Duration::from_millis(3_200));
    }
}
