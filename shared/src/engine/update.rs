//! Updating a READY step's resource to a newer request, and the field algebra behind it
//! (overlay, changed fields, the unknown base after an unfinished update).
//!
//! Invariants: a request never rolls back a newer applied revision; only the fields a request
//! specifies are applied; an update is claimed (one conditional write) and fenced by its own
//! lease; a refused update leaves the step READY in its applied state.

use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use super::timing::human;
use super::{record_arn, Engine, Outcome};
use crate::announce::Subject;
use crate::error::StepError;
use crate::ledger::{
    update_token, ErrorReason, Fields, Record, StepKey, UpdateClaim, UpdateEnd, UpdateLease,
};
use crate::revision::Revision;
use crate::step::{Plan, Step};

impl Engine {
    /// A request for a READY step. Older than (or equal to) the applied revision: a duplicate,
    /// never a rollback. Newer: its fields (only those it specifies) over the applied state
    /// are the wanted state; if that differs, the update is claimed (one conditional write),
    /// made, announced "<Step> Updated" and recorded, fenced by the update's lease. A pending
    /// update newer than this request is carried on instead.
    pub(super) async fn converge<S: Step>(
        &self,
        step: &S,
        plan: &Plan<S::Input>,
        subject: &Subject<'_>,
        record: Record,
        revision: &Revision,
        deadline: Option<SystemTime>,
    ) -> Result<Outcome, StepError> {
        let arn = record_arn(&record)?;
        let state = record.state.clone().unwrap_or_default();
        let pending = record
            .wanted
            .clone()
            .zip(record.wanted_revision.clone())
            .filter(|(_, pending)| pending > revision);
        let (wanted, target) = match pending {
            // Recorded while the step was created, it holds only the fields it specifies.
            Some((newer, target)) => (overlay(&state, &newer), target),
            None => {
                if record
                    .applied_revision
                    .as_ref()
                    .is_some_and(|a| a >= revision)
                {
                    if overlay(&state, &plan.desired) != state {
                        info!(applied = %record.applied_revision.as_ref().map(Revision::as_str).unwrap_or(""),
                            request = %revision, "an older request than the applied one: not applied");
                    }
                    return Ok(Outcome::Duplicate { arn });
                }
                (overlay(&state, &plan.desired), revision.clone())
            }
        };
        if wanted == state && record.wanted.is_none() {
            // Newer, but it asks for nothing the resource does not have.
            return Ok(Outcome::Duplicate { arn });
        }
        let update = self
            .ledger
            .claim_update(&record, &wanted, &target, self.settings.lease, deadline)
            .await?;
        let lease = match update {
            UpdateClaim::Acquired(lease) => lease,
            UpdateClaim::Busy { lease_expires_at } => {
                let left = lease_expires_at
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                return Err(StepError::retryable(
                    "UpdateInProgressElsewhere",
                    format!("{} is being updated by another delivery", plan.key),
                )
                .after(left + Duration::from_secs(1)));
            }
            UpdateClaim::Moved(now) => {
                return Err(StepError::retryable(
                    "ChangedMeanwhile",
                    format!(
                        "{} changed while this request was compared with it (now {} at {}); \
                         it is compared again on the next delivery",
                        plan.key,
                        now.status,
                        now.applied_revision
                            .as_ref()
                            .map(Revision::as_str)
                            .unwrap_or("-")
                    ),
                )
                .after(Duration::from_secs(1)))
            }
        };
        // An earlier holder's update that never ended may have landed, wholly or in part
        // (several calls: a name, tags): the recorded state is then no base to compute calls
        // from. Every wanted value is set again and every key either state names is in play.
        let base = record
            .update_owner
            .is_some()
            .then(|| unknown_base(&state, record.wanted.as_ref()));
        self.apply_update(step, plan, subject, &arn, &state, base, lease)
            .await
    }

    /// A request newer than any the step being created knows (`record`, as the claim read
    /// it) is recorded as the wanted one, so whoever makes the step READY applies it (a
    /// delivery, or the reconciler re-driving the step). Its delivery still comes back, in
    /// case that never happens before its message would otherwise be gone.
    pub(super) async fn want(
        &self,
        plan: &Plan<impl Send + Sync>,
        record: &Record,
        revision: &Revision,
    ) -> Result<(), StepError> {
        let known = [
            &record.requested_revision,
            &record.wanted_revision,
            &record.applied_revision,
        ]
        .into_iter()
        .flatten()
        .max();
        // A request that specifies nothing (Control Tower's) has nothing to apply.
        if plan.desired.is_empty() || known.is_some_and(|known| known >= revision) {
            return Ok(());
        }
        if self
            .ledger
            .want(&plan.key, record.generation, &plan.desired, revision)
            .await?
        {
            info!(revision = %revision, "a newer request recorded as wanted while the step is created");
        }
        Ok(())
    }

    /// Holding the update: bring the resource from `state` to the lease's wanted state. A
    /// holder after the first reads the resource and calls only if it still differs (an
    /// earlier holder's call may have landed with its response lost).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn apply_update<S: Step>(
        &self,
        step: &S,
        plan: &Plan<S::Input>,
        subject: &Subject<'_>,
        arn: &str,
        state: &Fields,
        base: Option<Fields>,
        lease: UpdateLease,
    ) -> Result<Outcome, StepError> {
        if lease.wanted == *state && base.is_none() {
            // A newer request that asks for what is there: only its revision is recorded.
            self.ledger.end_update(&lease, UpdateEnd::Applied).await?;
            return Ok(Outcome::Duplicate {
                arn: arn.to_string(),
            });
        }
        let token = update_token(
            &lease.key,
            lease.generation,
            &lease.revision,
            lease.salt.as_deref(),
        );
        let from = base.as_ref().unwrap_or(state);
        let made = async {
            let api = step.connect(&plan.input).await?;
            let needed = lease.attempt <= 1
                || step
                    .current(&api, &plan.input, arn, from, &lease.wanted)
                    .await?
                    != lease.wanted;
            if needed {
                step.update(&api, &plan.input, arn, from, &lease.wanted, &token)
                    .await?;
            }
            Ok::<(), StepError>(())
        }
        .await;
        if let Err(e) = made {
            // Not reachable yet (the member role gone, say): the update has the grace window
            // of the step it updates, from the first attempt of the pending work (kept across
            // releases); past it, it is refused like any refusal, never retried forever.
            let waited = SystemTime::now()
                .duration_since(lease.first_attempt_at)
                .unwrap_or_default();
            let window = self.settings.member_role_grace;
            let past_window = e.is_not_yet() && waited >= window;
            let e = if e.is_not_yet() && !past_window {
                let delay = self.settings.backoff(lease.attempt);
                e.after(delay)
            } else {
                e
            };
            if e.is_retryable() && !past_window {
                let end = UpdateEnd::Released {
                    reason: e.reason(),
                    retry_after: e.retry_after().map(|d| SystemTime::now() + d),
                };
                if let Err(ledger_err) = self.ledger.end_update(&lease, end).await {
                    warn!(error = %ledger_err, "could not release the update; its lease will expire");
                }
                return Err(e);
            }
            // Refused for good: recorded first (fenced), then announced; the step stays READY.
            let message = if past_window {
                format!(
                    "the update of {} to revision {} was not possible for {} after its first \
                     attempt, past the grace window of {} (MEMBER_ROLE_GRACE_SECONDS): {}; \
                     the resource keeps its applied state: fix the cause, then send the \
                     request again",
                    plan.key,
                    lease.revision,
                    human(waited),
                    human(window),
                    e.reason().message
                )
            } else {
                format!(
                    "the update of {} to revision {} was refused: {}; the resource keeps its \
                     applied state",
                    plan.key,
                    lease.revision,
                    e.reason().message
                )
            };
            let reason = ErrorReason {
                retryable: false,
                code: e.code().to_string(),
                message,
            };
            self.ledger
                .end_update(&lease, UpdateEnd::Refused(&reason))
                .await?;
            self.announcer.failed(subject, &reason).await?;
            return Ok(Outcome::Rejected(reason));
        }
        let changed = changed_fields(state, &lease.wanted);
        let announced = self
            .announcer
            .updated(
                S::UPDATED_DETAIL_TYPE,
                subject,
                arn,
                &lease.revision,
                &changed,
            )
            .await;
        if let Err(e) = announced {
            let end = UpdateEnd::Released {
                reason: e.reason(),
                retry_after: None,
            };
            if let Err(ledger_err) = self.ledger.end_update(&lease, end).await {
                warn!(error = %ledger_err, "could not release the update; its lease will expire");
            }
            return Err(e);
        }
        self.ledger.end_update(&lease, UpdateEnd::Applied).await?;
        info!(arn = %arn, revision = %lease.revision, changed = ?changed, "resource updated");
        Ok(Outcome::Updated {
            arn: arn.to_string(),
            changed,
        })
    }

    /// Brings a resource that was there already (adopted, pre-existing) to the request's
    /// fields, if it differs.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn align<S: Step>(
        &self,
        step: &S,
        plan: &Plan<S::Input>,
        api: &S::Api,
        arn: &str,
        key: &StepKey,
        generation: u32,
        salt: Option<&str>,
        revision: &Revision,
    ) -> Result<(), StepError> {
        let now = step
            .current(api, &plan.input, arn, &Fields::new(), &plan.desired)
            .await?;
        if now != plan.desired {
            let token = update_token(key, generation, revision, salt);
            step.update(api, &plan.input, arn, &now, &plan.desired, &token)
                .await?;
        }
        Ok(())
    }
}

/// What a resource may be in after an unfinished update from `state` towards `pending`:
/// every field unknown, and a map field (tags, details) with the keys of both, each unknown,
/// so that an update from it sets every wanted value and removes every key either state named
/// that is no longer wanted. Unknown is a string no request can hold (a NUL character).
fn unknown_base(state: &Fields, pending: Option<&Fields>) -> Fields {
    let unknown = || serde_json::Value::String("\u{0}unknown".into());
    let mut base = Fields::new();
    for (field, value) in state.iter().chain(pending.into_iter().flatten()) {
        let merged = match (value, base.get(field)) {
            (serde_json::Value::Object(keys), seen) => {
                let mut all = match seen {
                    Some(serde_json::Value::Object(seen)) => seen.clone(),
                    _ => serde_json::Map::new(),
                };
                all.extend(keys.keys().map(|k| (k.clone(), unknown())));
                serde_json::Value::Object(all)
            }
            _ => unknown(),
        };
        base.insert(field.clone(), merged);
    }
    base
}

/// `state` with every field `request` specifies taken from it.
fn overlay(state: &Fields, request: &Fields) -> Fields {
    let mut merged = state.clone();
    for (field, value) in request {
        merged.insert(field.clone(), value.clone());
    }
    merged
}

/// The fields whose values differ between two states.
pub(super) fn changed_fields(before: &Fields, after: &Fields) -> Vec<String> {
    let mut names: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn fields(v: Value) -> Fields {
        match v {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn overlay_takes_what_the_request_specifies_and_keeps_the_rest() {
        let state = fields(json!({"name": "a", "description": "d", "tags": {"x": "1", "y": "2"}}));
        let request = fields(json!({"name": "b", "tags": {"x": "3"}, "owner": "o"}));
        assert_eq!(
            overlay(&state, &request),
            fields(json!({
                "name": "b",
                "description": "d",
                // A map is the request's whole map: keys it does not name are removed.
                "tags": {"x": "3"},
                "owner": "o",
            }))
        );
        assert_eq!(overlay(&state, &Fields::new()), state);
    }

    #[test]
    fn changed_fields_names_each_difference_once_in_order() {
        let before = fields(json!({"name": "a", "tags": {"x": "1"}, "gone": 1, "same": true}));
        let after = fields(json!({"tags": {"x": "2"}, "name": "b", "new": 2, "same": true}));
        assert_eq!(
            changed_fields(&before, &after),
            ["gone", "name", "new", "tags"].map(String::from).to_vec()
        );
        assert!(changed_fields(&before, &before).is_empty());
    }

    #[test]
    fn unknown_base_makes_an_update_set_every_field_and_key_again() {
        let state = fields(json!({"name": "a", "tags": {"x": "1"}}));
        let pending = fields(json!({"name": "b", "tags": {"y": "2"}, "owner": "o"}));
        let base = unknown_base(&state, Some(&pending));

        let mut keys: Vec<&String> = base.keys().collect();
        keys.sort();
        assert_eq!(keys, ["name", "owner", "tags"]);
        // Every key either state named is in play, each with a value no request holds.
        let tags = base["tags"].as_object().expect("a map stays a map");
        let mut tag_keys: Vec<&String> = tags.keys().collect();
        tag_keys.sort();
        assert_eq!(tag_keys, ["x", "y"]);
        for value in tags.values().chain([&base["name"], &base["owner"]]) {
            assert!(
                value.as_str().is_some_and(|s| s.contains('\u{0}')),
                "{value}"
            );
        }
        // So an update from it towards either state changes every field that state names.
        assert_eq!(
            changed_fields(&base, &state),
            ["name", "owner", "tags"].map(String::from).to_vec()
        );
        assert_eq!(
            changed_fields(&base, &pending),
            ["name", "owner", "tags"].map(String::from).to_vec()
        );
    }

    #[test]
    fn unknown_base_without_a_pending_update_covers_the_state() {
        let state = fields(json!({"name": "a", "tags": {"x": "1"}}));
        let base = unknown_base(&state, None);
        assert_eq!(base.len(), 2);
        assert_ne!(base["name"], state["name"]);
        assert_eq!(base["tags"].as_object().map(|t| t.len()), Some(1));
        assert_ne!(base["tags"]["x"], state["tags"]["x"]);
    }
}
