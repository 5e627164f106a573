//! The drift audit of READY steps: is the resource still there and in its applied state.
//!
//! Invariants: a step with an update in flight is not audited; a finding is written only
//! when it changes and announced once; repairs go through the same claims and fences as any
//! delivery.

use std::time::SystemTime;

use tracing::{info, warn};

use super::update::changed_fields;
use super::{record_arn, Audit, Delivery, Engine};
use crate::announce::Event;
use crate::clock::now_ms;
use crate::error::{code, StepError};
use crate::events::OnboardingRequest;
use crate::ledger::{Fields, LedgerError, Record, UpdateClaim, UpdateKind};
use crate::step::{Readiness, Step};

/// The error code of a resource the service no longer knows.
const NOT_FOUND: &str = "ResourceNotFoundException";

/// How one audit runs: whether it repairs the drift it finds (`RepairDrift`, `sweep
/// --repair`), and the invocation's deadline.
#[derive(Clone, Copy, Debug, Default)]
pub struct AuditRun {
    pub repair: bool,
    pub deadline: Option<SystemTime>,
}

impl Engine {
    /// The drift audit of one READY step (`record`, re-planned from `request`): is the
    /// resource still there, and does it still hold the applied state? Drift is recorded
    /// (a write only when the finding changes) and announced once ("Onboarding Drift
    /// Detected"); with `run.repair`, a resource that is gone is created again as a new
    /// generation, and one that changed is brought back by an update, both through the
    /// same claims and fences as any delivery.
    pub async fn audit<S: Step>(
        &self,
        step: &S,
        request: &OnboardingRequest,
        record: Record,
        run: AuditRun,
    ) -> Result<Audit, StepError> {
        let key = record.key.clone();
        self.bounded(
            &key,
            run.deadline,
            Box::pin(self.audit_held(step, request, record, run)),
        )
        .await
    }

    async fn audit_held<S: Step>(
        &self,
        step: &S,
        request: &OnboardingRequest,
        record: Record,
        AuditRun { repair, deadline }: AuditRun,
    ) -> Result<Audit, StepError> {
        if record.update_owner.is_some() || record.update_pending() {
            // An update is in flight: the resource may already hold what the ledger does
            // not yet; the update's holder (or the reconciler) finishes it first.
            return Ok(Audit::Deferred);
        }
        let plan = step
            .plan(request)
            .map_err(|why| StepError::permanent(code::NOT_REBUILDABLE, why))?;
        let arn = record_arn(&record)?;
        let state = record.state.clone().unwrap_or_default();
        let subject = super::subject_of::<S>(&plan, request);
        let revision = request.revision();
        let delivery = Delivery {
            engine: self,
            step,
            plan: &plan,
            subject: &subject,
            revision: &revision,
            deadline,
            asks: false,
        };
        let (gone, now, changed) = match delivery.observe(&arn, &state).await {
            Ok(found) => found,
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => {
                self.record_refused_audit(&record, &e).await?;
                return Err(e);
            }
        };
        if !gone && changed.is_empty() {
            if record.drift.is_some() {
                self.ledger.record_audit(&record, None).await?;
            }
            return Ok(Audit::Clean);
        }
        let finding = serde_json::json!({ "gone": gone, "changed": changed });
        let known = record.drift.as_ref().is_some_and(|d| {
            d.get("gone") == finding.get("gone") && d.get("changed") == finding.get("changed")
        });
        if !known {
            // Recorded with its announcement in the outbox, then sent.
            let mut stored = finding.clone();
            stored["at"] = serde_json::json!(now_ms());
            let event = Event::drift(&subject, &arn, record.generation, (gone, &changed), repair);
            let Some(now) = self
                .ledger
                .record_audit(&record, Some((&stored.to_string(), Some(&event.to_json()))))
                .await?
            else {
                // The step moved on (a delivery or an operator): nothing to report.
                return Ok(Audit::Clean);
            };
            warn!(arn = %arn, gone, changed = ?changed, "drift detected");
            self.send_outbox(now).await?;
        }
        let repaired = if !repair {
            None
        } else if gone {
            match self.ledger.repair(&record).await {
                // Made again with the applied state, which asks nothing of the desired
                // state (its fields are older requests').
                Ok(_) => Some(self.run_as(step, request, deadline, false).await?),
                // Another repairer (or a delivery, an operator) moved the step on since this
                // audit read it: theirs is the repair.
                Err(LedgerError::NotAllowed(why)) => {
                    info!(key = %record.key, reason = %why, "not repaired");
                    None
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            // A new version of the same desired state: the repair's calls are new calls,
            // never a replay of the update that last set these fields.
            match self
                .ledger
                .claim_update(&record, UpdateKind::Repair, self.settings.lease, deadline)
                .await?
            {
                UpdateClaim::Acquired(lease) => {
                    Some(Box::pin(delivery.apply_update(&arn, &now, None, lease)).await?)
                }
                UpdateClaim::Busy { .. } | UpdateClaim::Moved(_) => None,
            }
        };
        Ok(Audit::Drift {
            gone,
            changed,
            repaired,
        })
    }
}

impl Engine {
    /// An audit refused for good (a permission the member role lacks, ...): recorded on the
    /// step, which stays READY with its applied state, so `onboarding status` shows why it is
    /// not audited; the reconciler counts it apart from audited steps. Written only when the
    /// refusal is new.
    async fn record_refused_audit(&self, record: &Record, e: &StepError) -> Result<(), StepError> {
        let refused = serde_json::json!({ "code": e.code(), "message": e.reason().message });
        if record.drift.as_ref().and_then(|d| d.get("refused")) == Some(&refused) {
            return Ok(());
        }
        let stored = serde_json::json!({ "refused": refused, "at": now_ms() });
        self.ledger
            .record_audit(record, Some((&stored.to_string(), None)))
            .await?;
        Ok(())
    }
}

impl<S: Step> Delivery<'_, S> {
    /// What the resource at `arn` holds now, against the applied `state`: whether it is gone,
    /// what it holds, and which of the applied fields it no longer holds (fields the service
    /// never shows are not compared).
    async fn observe(
        &self,
        arn: &str,
        state: &Fields,
    ) -> Result<(bool, Fields, Vec<String>), StepError> {
        let Delivery { step, plan, .. } = *self;
        let api = step.connect(&plan.input).await?;
        let gone = match step.readiness(&api, arn).await {
            Ok(Readiness::Ready | Readiness::Pending(_)) => false,
            Ok(Readiness::Failed(_)) => true,
            Err(e) if e.code() == NOT_FOUND => true,
            Err(e) => return Err(e),
        };
        if gone {
            return Ok((true, Fields::new(), Vec::new()));
        }
        let now = step.current(&api, &plan.input, arn, state, state).await?;
        let changed = changed_fields(&now, state)
            .into_iter()
            .filter(|f| state.contains_key(f) && !S::UNOBSERVABLE.contains(&f.as_str()))
            .collect();
        Ok((false, now, changed))
    }
}
