//! Updating a READY step's resource to its desired state ([`crate::desired`]), and the
//! field algebra behind it (changed fields, the unknown base after an unfinished update).
//!
//! Invariants: every field takes the value of the newest request that names it, whatever the
//! order of delivery (an older request never rolls back a newer one's field, and one that
//! names nothing changes nothing); an update is claimed (one conditional write) and fenced by
//! its own lease and the generation; every call carries a token bound to the desired version
//! and its own parameters; a refused update leaves the step READY in its applied state.

use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use super::timing::human;
use super::{record_arn, Delivery, Outcome};
use crate::announce::Event;
use crate::desired::{self, Desired};
use crate::error::{code, StepError};
use crate::ledger::{
    update_token, ErrorReason, Fields, Record, Status, UpdateClaim, UpdateEnd, UpdateKind,
    UpdateLease,
};
use crate::step::Step;

impl<S: Step> Delivery<'_, S> {
    /// A request for a READY step: its fields are merged into the desired state (one write
    /// only if it asks something the desired state does not hold as new), then whatever the
    /// desired state asks beyond what the resource holds is applied: the update is claimed
    /// (one conditional write), made, announced "\<Step\> Updated" and recorded, fenced by
    /// the update's lease and the generation. A duplicate, an older request, or one that
    /// names nothing costs no write at all.
    pub(super) async fn converge(&self, record: Record) -> Result<Outcome, StepError> {
        let Delivery {
            engine,
            plan,
            deadline,
            ..
        } = *self;
        let arn = record_arn(&record)?;
        let record = if record.outbox.is_empty() {
            record
        } else {
            engine.send_outbox(record).await?
        };
        let asked = self.asked();
        let mut merged = record.desired.clone();
        // Something to record: a field this request is the newest to name (or a desired
        // state derived from an item written before it was stored).
        let news = !asked.is_empty() && (merged.merge(&asked) || !record.desired_stored);
        let state = record.state.clone().unwrap_or_default();
        let owed = if news {
            merged.pending(&state)
        } else {
            record.update_pending()
        };
        if !owed {
            let record = if news {
                self.merge(record).await?
            } else {
                record
            };
            // What a newer request asked is all there already: it is applied.
            let record = engine.ledger.advance_applied(record).await?;
            // Outcomes recorded and not yet announced (their holder died, or its PutEvents
            // failed) are announced now; a step with nothing left owed leaves the attention
            // index. Neither costs a request when there is nothing to do.
            engine.send_outbox(record).await?;
            return Ok(Outcome::Duplicate { arn });
        }
        // The merge is recorded by the update claim itself: one write.
        let kind = if news {
            UpdateKind::Merged(&merged)
        } else {
            UpdateKind::Pending
        };
        let update = engine
            .ledger
            .claim_update(&record, kind, engine.settings.lease, deadline)
            .await?;
        let lease = match update {
            UpdateClaim::Acquired(lease) => lease,
            UpdateClaim::Busy { lease_expires_at } => {
                // Held by another delivery: this request's fields are recorded all the same,
                // so its holder (or the next) applies them.
                if news {
                    self.merge(record).await?;
                }
                let left = lease_expires_at
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                return Err(StepError::retryable(
                    code::UPDATE_IN_PROGRESS_ELSEWHERE,
                    format!(
                        "{} is being updated by another delivery; this request's fields are \
                         recorded in its desired state",
                        plan.key
                    ),
                )
                .after(left + Duration::from_secs(1)));
            }
            UpdateClaim::Moved(now) => {
                let (status, version) = (now.status, now.desired_version);
                if news && now.status == Status::Ready {
                    self.merge(*now).await?;
                }
                return Err(StepError::retryable(
                    code::CHANGED_MEANWHILE,
                    format!(
                        "{} changed while this request was compared with it (now {status}, \
                         desired version {version}); it is compared again on the next delivery",
                        plan.key
                    ),
                )
                .after(Duration::from_secs(1)));
            }
        };
        // The applied state as the claim found it: an earlier holder of this version may
        // have finished it since this delivery read the step.
        let state = lease.state.clone();
        // An earlier holder's update that never ended may have landed, wholly or in part
        // (several calls: a name, tags): the recorded state is then no base to compute calls
        // from. Every desired value is set again and every key the state or any request
        // names (a removal too) is in play.
        // (Not when an earlier holder finished this very version since: the claim found its
        // state recorded, and there is nothing to call and nothing to announce again.)
        let base = (record.update_owner.is_some() && state != lease.wanted).then(|| {
            let named = if news { &merged } else { &record.desired }.named();
            unknown_base(&state, Some(&named))
        });
        Box::pin(self.apply_update(&arn, &state, base, lease)).await
    }

    /// Holding the update: bring the resource from `state` to the lease's wanted state. A
    /// holder after the first reads the resource and calls only if it still differs (an
    /// earlier holder's call may have landed with its response lost).
    pub(super) async fn apply_update(
        &self,
        arn: &str,
        state: &Fields,
        base: Option<Fields>,
        lease: UpdateLease,
    ) -> Result<Outcome, StepError> {
        let arn = arn.to_string();
        if lease.wanted == *state && base.is_none() {
            // The desired state asks for what is there: nothing changes, nothing is
            // announced; the step leaves the attention index if nothing else is owed.
            self.end_update(&lease, UpdateEnd::Applied(None)).await?;
            return Ok(Outcome::Duplicate { arn });
        }
        if let Err(e) = self
            .update_calls(&arn, base.as_ref().unwrap_or(state), &lease)
            .await
        {
            return self.update_failed(&arn, &lease, e).await;
        }
        // Recorded (fenced on the update's lease and generation) with its announcement in
        // the outbox, then sent, then removed from the outbox.
        let changed = desired::changed(state, &lease.wanted);
        let event = Event::updated(
            S::UPDATED_DETAIL_TYPE,
            self.subject,
            &arn,
            (lease.generation, lease.version),
            &lease.revision,
            &changed,
        );
        self.end_update(&lease, UpdateEnd::Applied(Some(&event.to_json())))
            .await?;
        info!(arn = %arn, revision = %lease.revision, changed = ?changed, "resource updated");
        Ok(Outcome::Updated { arn, changed })
    }

    /// The calls that bring the resource from `from` to the lease's wanted state. One token
    /// per desired version: every holder of this update sends the same calls with the same
    /// tokens; a newer version or a repair (a new version) sends new ones. A holder after the
    /// first reads what the resource holds now (an earlier holder's calls may have landed,
    /// wholly or in part) and makes only the calls still needed, from there.
    async fn update_calls(
        &self,
        arn: &str,
        from: &Fields,
        lease: &UpdateLease,
    ) -> Result<(), StepError> {
        let Delivery { step, plan, .. } = *self;
        let token = update_token(
            &lease.key,
            lease.generation,
            &format!("v{}", lease.version),
            lease.salt.as_deref(),
        );
        let api = step.connect(&plan.input).await?;
        let now = if lease.attempt > 1 {
            Some(
                step.current(&api, &plan.input, arn, from, &lease.wanted)
                    .await?,
            )
        } else {
            None
        };
        if now.as_ref() != Some(&lease.wanted) {
            let from = now.as_ref().unwrap_or(from);
            step.update(&api, &plan.input, arn, from, &lease.wanted, &token)
                .await?;
        }
        Ok(())
    }

    /// The update's calls failed with `e`: released for a later delivery while it may pass
    /// (not reachable yet: within the grace window of the step it updates, from the first
    /// attempt of the pending work, kept across releases); else refused for good, recorded
    /// first (fenced), then announced. Either way the step stays READY in its applied state.
    async fn update_failed(
        &self,
        arn: &str,
        lease: &UpdateLease,
        e: StepError,
    ) -> Result<Outcome, StepError> {
        let settings = &self.engine.settings;
        let waited = SystemTime::now()
            .duration_since(lease.first_attempt_at)
            .unwrap_or_default();
        let past_window = e.is_not_yet() && waited >= settings.member_role_grace;
        let e = if e.is_not_yet() && !past_window {
            e.after(settings.backoff(lease.attempt))
        } else {
            e
        };
        if e.is_retryable() && !past_window {
            let end = UpdateEnd::Released {
                reason: e.reason(),
                retry_after: e.retry_after().map(|d| SystemTime::now() + d),
            };
            if let Err(ledger_err) = self.engine.ledger.end_update(lease, end).await {
                warn!(error = %ledger_err, "could not release the update; its lease will expire");
            }
            return Err(e);
        }
        let (key, revision) = (&self.plan.key, &lease.revision);
        let message = if past_window {
            format!(
                "the update of {key} to revision {revision} was not possible for {} after its \
                 first attempt, past the grace window of {} (MEMBER_ROLE_GRACE_SECONDS): {}; \
                 the resource keeps its applied state: fix the cause, then send the request \
                 again",
                human(waited),
                human(settings.member_role_grace),
                e.reason().message
            )
        } else {
            format!(
                "the update of {key} to revision {revision} was refused: {}; the resource keeps \
                 its applied state",
                e.reason().message
            )
        };
        let reason = ErrorReason {
            retryable: false,
            code: e.code().to_string(),
            message,
        };
        let event = Event::update_refused(
            self.subject,
            arn,
            (lease.generation, lease.version),
            &reason,
        );
        self.end_update(lease, UpdateEnd::Refused(&reason, &event.to_json()))
            .await?;
        Ok(Outcome::Rejected(reason))
    }

    /// Ends the update (fenced on its lease and the generation), then sends what the step's
    /// outbox holds.
    async fn end_update(&self, lease: &UpdateLease, end: UpdateEnd<'_>) -> Result<(), StepError> {
        if let Some(now) = self.engine.ledger.end_update(lease, end).await? {
            self.engine.send_outbox(now).await?;
        }
        Ok(())
    }
}

impl<S: Step> Delivery<'_, S> {
    /// What this request asks of the desired state: its fields at its revision; nothing for
    /// a request rebuilt from the ledger.
    fn asked(&self) -> Desired {
        if self.asks {
            Desired::of(&self.plan.desired, self.revision)
        } else {
            Desired::default()
        }
    }

    /// Merges what this request asks into the step's desired state (`record`, as read):
    /// nothing is written when it asks nothing new, so a duplicate costs no write; a request
    /// that acquires nothing (the step held elsewhere, being created) is recorded all the
    /// same, so nothing asked is lost. Returns the step with the merged desired state.
    pub(super) async fn merge(&self, record: Record) -> Result<Record, StepError> {
        let asked = self.asked();
        if asked.is_empty() {
            return Ok(record);
        }
        let mut merged = record.desired.clone();
        if !merged.merge(&asked) && record.desired_stored {
            return Ok(record);
        }
        match self.engine.ledger.record_desired(&record, &asked).await? {
            Some(now) => {
                info!(revision = %self.revision, version = now.desired_version, "desired state merged");
                Ok(now)
            }
            None => Err(StepError::retryable(
                code::CHANGED_MEANWHILE,
                format!(
                    "{} moved on while this request's fields were recorded; it is compared \
                     again on the next delivery",
                    self.plan.key
                ),
            )
            .after(Duration::from_secs(1))),
        }
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
