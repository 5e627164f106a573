//! The end of an account's life: its departure retires its steps, a retired step refuses
//! every older request, and a newer one reopens it as a new generation.

use tracing::info;

use super::{Delivery, Engine, Outcome};
use crate::announce::Subject;
use crate::error::StepError;
use crate::events::{OffboardingRequest, OnboardingRequest};
use crate::ledger::{Applied, Claim, Record, Retirement, StepKey};
use crate::revision::Revision;
use crate::step::Step;

/// A request newer than the retirement of `record` reopens it (a closed account reopened
/// within AWS's 90 days and sent to onboarding again); an older one (a late redelivery, an
/// archive replay) is acknowledged as retired.
pub(super) fn reopens(record: &Record, revision: &Revision) -> bool {
    record
        .retired_revision
        .as_ref()
        .is_some_and(|retired| revision > retired)
}

/// Where a step keyed further than its account (a portal's providers) records that the
/// account departed: a retired placeholder at the step's name alone, as a step keyed by
/// account alone is retired even before any request reached it.
pub(super) fn departure_mark<S: Step>(account: &str) -> StepKey {
    StepKey::account(account, S::NAME)
}

impl Engine {
    /// A new item of a step keyed further than its account, claimed by a request older
    /// than the account's recorded departure: retired as the departure retired the rest,
    /// never created. `None` when the account has no departure newer than the request.
    pub(super) async fn departed<S: Step>(
        &self,
        key: &StepKey,
        revision: &Revision,
        subject: &Subject<'_>,
    ) -> Result<Option<Outcome>, StepError> {
        let Some(account) = key.account_id() else {
            return Ok(None);
        };
        let mark = departure_mark::<S>(account);
        if mark == *key {
            return Ok(None);
        }
        let Some(departed) = self.ledger.get_step(&mark).await? else {
            return Ok(None);
        };
        let Some(departure) = departed.retired_revision.as_ref().filter(|d| *d > revision) else {
            return Ok(None);
        };
        let why = serde_json::Value::Object(departed.retired.clone().unwrap_or_default());
        match self.ledger.retire(key, departure, &why).await? {
            Retirement::Retired(record) | Retirement::Already(record) => {
                info!(key = %key, "a request older than the account's departure: retired, not created");
                self.retired(subject, record).await.map(Some)
            }
            Retirement::Newer(_) => Ok(None),
        }
    }

    /// An account closed or left the organization: retire `step`'s steps of that account.
    /// The step's own key for the account (when the step is keyed by account alone) is
    /// retired even if no request reached it yet, so a late request is refused; steps keyed
    /// further (a portal's providers) are found with one Query of the account's scope. Each
    /// retirement is recorded (fenced: never over a request newer than the departure), then
    /// announced "Account Offboarded" (after what its outbox still holds from before it),
    /// then marked announced; a retirement recorded earlier and not yet announced is
    /// announced now. Steps of the organization are not the
    /// account's: nothing to retire.
    pub async fn retire<S: Step>(
        &self,
        step: &S,
        request: &OffboardingRequest,
    ) -> Result<Outcome, StepError> {
        let reason = request.reason();
        let scope = StepKey::account(&request.account_id, S::NAME).scope;
        let own_key = step
            .plan(&OnboardingRequest {
                event_id: request.event_id.clone(),
                origin: crate::events::Origin::Organizations,
                replay_name: None,
                time: request.time.clone(),
                account_id: request.account_id.clone(),
                account_name: None,
                instance: Default::default(),
                web_identity_provider: None,
            })
            .ok()
            .map(|plan| plan.key);
        let mut keys = Vec::new();
        let keyed_further = own_key.is_none();
        match own_key {
            Some(key) if key.scope == scope => keys.push(key),
            Some(_) => {
                info!(outcome = "skipped", reason = %reason, "the organization's step outlives its member accounts");
                return Ok(Outcome::Skipped(format!(
                    "{} belongs to the organization, not to account {}: nothing to retire",
                    S::NAME,
                    request.account_id
                )));
            }
            None => {
                // The step's mark for the whole account first: a request for a key no
                // request reached yet (another provider) finds it and is refused.
                keys.push(departure_mark::<S>(&request.account_id));
                let prefix = format!("{}#", S::NAME);
                for record in self.ledger.get(&scope).await? {
                    if record.key.step.starts_with(&prefix) {
                        keys.push(record.key);
                    }
                }
            }
        }
        let revision = Revision::at(request.time.as_deref(), &request.event_id);
        let why = serde_json::json!({
            "event": request.departure.event_name(),
            "eventId": request.event_id,
            "time": request.time,
            "departure": request.departure,
            "reason": reason,
        });
        let subject = Subject {
            step: S::NAME,
            account_id: Some(&request.account_id),
            request_event_id: &request.event_id,
        };
        let (mut retired, mut kept) = (Vec::new(), Vec::new());
        let mark = departure_mark::<S>(&request.account_id);
        for key in keys {
            match self.ledger.retire(&key, &revision, &why).await? {
                // The mark of a step keyed further stands for no resource: recorded, not
                // announced.
                Retirement::Retired(record) | Retirement::Already(record)
                    if key == mark && keyed_further =>
                {
                    if !record.announced {
                        self.ledger
                            .mark_retirement_announced(&key, record.generation)
                            .await?;
                    }
                }
                Retirement::Retired(record) | Retirement::Already(record) => {
                    if !record.announced {
                        let record = self.send_outbox(record).await?;
                        let details = record.retired.clone().unwrap_or_default();
                        let announce = self.announcer.offboarded(
                            &subject,
                            record.resource_arn.as_deref(),
                            &details,
                        );
                        self.announce_late(&record, announce).await?;
                    }
                    info!(key = %key, reason = %reason, "step retired");
                    retired.push(key.to_string());
                }
                Retirement::Newer(record) => {
                    info!(key = %key, status = %record.status,
                        "not retired: the step knows a request newer than the departure");
                    kept.push(key.to_string());
                }
            }
        }
        Ok(Outcome::Offboarded {
            retired,
            kept,
            reason,
        })
    }

    /// A retirement recorded and not announced (the closure's delivery died, its message ran
    /// out), for the reconciler: announced from the ledger alone, since a step retired before
    /// any request reached it records no request to rebuild.
    pub async fn announce_retirement<S: Step>(&self, record: Record) -> Result<Outcome, StepError> {
        let event_id = record
            .retired
            .as_ref()
            .and_then(|why| why.get("eventId"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let account = record.key.account_id().map(str::to_owned);
        let subject = Subject {
            step: S::NAME,
            account_id: account.as_deref(),
            request_event_id: &event_id,
        };
        self.retired(&subject, record).await
    }

    /// A delivery for a retired step: acknowledged with why (its retirement announced if an
    /// earlier delivery recorded it and crashed before announcing); nothing is created.
    pub(super) async fn retired(
        &self,
        subject: &Subject<'_>,
        record: Record,
    ) -> Result<Outcome, StepError> {
        let details = record.retired.clone().unwrap_or_default();
        let key = record.key.clone();
        if !record.announced {
            // What the step recorded before its retirement (an update's Updated) first.
            let record = self.send_outbox(record).await?;
            let announce =
                self.announcer
                    .offboarded(subject, record.resource_arn.as_deref(), &details);
            self.announce_late(&record, announce).await?;
        }
        let why = details
            .get("reason")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("its account closed or left the organization");
        Ok(Outcome::Retired {
            reason: format!(
                "{key} is RETIRED ({why}); a request newer than the retirement starts it again"
            ),
        })
    }
}

impl<S: Step> Delivery<'_, S> {
    /// Reopens a retired step (`record`) for this request, newer than its retirement (a new
    /// generation that looks the old resource up before creating), and claims it again.
    pub(super) async fn reopened(
        &self,
        request_hash: &str,
        record: Record,
    ) -> Result<Claim, StepError> {
        let request = Applied {
            state: &self.plan.desired,
            revision: self.revision,
        };
        if self.engine.ledger.reopen(&record, request).await? {
            info!(key = %record.key, generation = record.generation + 1,
                "retired step reopened by a newer request");
        }
        self.claim(request_hash).await
    }
}
