//! Planning: each listed account's request, the ledger keys of its steps, and its fate.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use onboarding::aws::MemberAccess;
use onboarding::events::OnboardingRequest;
use onboarding::ledger::{Status, StepKey};
use onboarding::step::Step;
use onboarding::steps::{IdentityCenterInstance, WebIdentityProvider};

use serde_json::Value;

use super::organizations::{Listing, OrgAccount};
use super::portals::{field_reason, request_event, PortalEntry};
use super::state::PublishedEntry;
use crate::context::Context;
use crate::failure::{Failure, Outcome};
use crate::publish::{self, Prepared};

/// Why an account is not onboarded by this run (the summary groups by it).
pub const FAILED_REASON: &str = "FAILED: use onboarding retry";
pub const IN_PROGRESS_REASON: &str = "in progress";
pub const MANAGEMENT_REASON: &str = "the management account (never onboarded)";
pub const EXCLUDED_REASON: &str = "excluded (--exclude)";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Every step the request asks for is READY.
    Ready,
    /// To publish (after a dry run: would be published).
    Publish,
    Published {
        event_id: String,
    },
    Skipped(String),
    Failed {
        code: String,
        message: String,
    },
    /// Not published: the run stopped first (Ctrl-C, a batch refused as a whole).
    NotPublished(String),
}

pub struct Line {
    pub account: OrgAccount,
    pub provider: Option<String>,
    /// The steps read and their status (None: not in the ledger).
    pub steps: Vec<(StepKey, Option<Status>)>,
    pub prepared: Option<Prepared>,
    pub note: Option<String>,
    pub fate: Fate,
}

impl Line {
    pub fn outcome(&self, dry_run: bool) -> (&'static str, &'static str) {
        match &self.fate {
            Fate::Ready => ("ready", "already ready"),
            Fate::Publish if dry_run => ("would-publish", "would publish"),
            Fate::Publish => ("not-published", "not published"),
            Fate::Published { .. } => ("published", "published"),
            Fate::Skipped(_) => ("skipped", "skipped"),
            Fate::Failed { .. } => ("failed", "failed to publish"),
            Fate::NotPublished(_) => ("not-published", "not published"),
        }
    }

    pub fn reason(&self) -> Option<String> {
        match &self.fate {
            Fate::Skipped(r) | Fate::NotPublished(r) => Some(r.clone()),
            Fate::Failed { code, message } => Some(format!("{code}: {message}")),
            _ => None,
        }
    }
}

/// Decides an account's fate from its steps' statuses (and the state file).
pub fn decide(
    steps: &[(StepKey, Option<Status>)],
    requested: Option<&PublishedEntry>,
    force: bool,
    state_name: &str,
) -> Fate {
    if steps.iter().any(|(_, s)| *s == Some(Status::Failed)) {
        return Fate::Skipped(FAILED_REASON.to_owned());
    }
    if steps
        .iter()
        .any(|(_, s)| matches!(s, Some(Status::InProgress | Status::Created)))
    {
        return Fate::Skipped(IN_PROGRESS_REASON.to_owned());
    }
    if !steps.is_empty() && steps.iter().all(|(_, s)| *s == Some(Status::Ready)) {
        return Fate::Ready;
    }
    match requested {
        Some(_) if !force => Fate::Skipped(format!(
            "requested by an earlier run (state file {state_name}); --force publishes it again"
        )),
        _ => Fate::Publish,
    }
}

/// The steps whose ledger keys the requests name, computed as the functions compute them.
/// The steps only plan here: nothing is assumed or called.
pub struct Planner {
    pub instance: IdentityCenterInstance,
    pub web: WebIdentityProvider,
}

impl Planner {
    pub fn new(ctx: &Context) -> Planner {
        let access = || MemberAccess::new(&ctx.config, "unused", "aws");
        Planner {
            instance: IdentityCenterInstance::new(access()),
            web: WebIdentityProvider::new(
                access(),
                aws_sdk_secretsmanager::Client::new(&ctx.config),
            ),
        }
    }

    /// The ledger keys of the steps `request` asks for.
    pub fn keys(&self, request: &OnboardingRequest) -> Vec<StepKey> {
        let mut keys = Vec::new();
        if let Ok(plan) = self.instance.plan(request) {
            keys.push(plan.key);
        }
        if request.web_identity_provider.is_some() {
            if let Ok(plan) = self.web.plan(request) {
                keys.push(plan.key);
            }
        }
        keys
    }
}

/// Prepares the request of one account; an account name the decoder refuses is left out
/// (the request is valid without it).
pub fn prepare_account(
    ctx: &Context,
    account: &OrgAccount,
    portal: Option<&PortalEntry>,
) -> Result<(Prepared, Option<String>), String> {
    let provider = portal.map(|p| &p.provider);
    let event = request_event(ctx, &account.id, account.name.as_deref(), provider);
    match publish::prepare(&event, &ctx.accept) {
        Ok(p) => Ok((p, None)),
        Err(why) if account.name.is_some() => {
            let event = request_event(ctx, &account.id, None, provider);
            let p = publish::prepare(&event, &ctx.accept).map_err(|e| field_reason(&e))?;
            Ok((
                p,
                Some(format!(
                    "accountName left out of the request: {}",
                    field_reason(&why)
                )),
            ))
        }
        Err(why) => Err(field_reason(&why)),
    }
}

/// A line for every listed account, by account id: who is a candidate, and what each would
/// be sent. Refused (nothing is published) when any candidate would get a request the
/// functions reject.
pub fn candidates(
    ctx: &Context,
    listing: &Listing,
    portals: &BTreeMap<String, PortalEntry>,
    exclude: &[String],
) -> Outcome<Vec<Line>> {
    let excluded: BTreeSet<&str> = exclude.iter().map(String::as_str).collect();
    let mut lines: Vec<Line> = Vec::new();
    let mut invalid: Vec<String> = Vec::new();
    let planner = Planner::new(ctx);
    for account in &listing.accounts {
        let mut line = Line {
            account: account.clone(),
            provider: None,
            steps: Vec::new(),
            prepared: None,
            note: None,
            fate: Fate::Publish,
        };
        if account.id == listing.management_account {
            line.fate = Fate::Skipped(MANAGEMENT_REASON.to_owned());
        } else if excluded.contains(account.id.as_str()) {
            line.fate = Fate::Skipped(EXCLUDED_REASON.to_owned());
        } else if account.state != "ACTIVE" {
            line.fate = Fate::Skipped(format!("not ACTIVE ({})", account.state));
        } else {
            let portal = portals.get(&account.id);
            match prepare_account(ctx, account, portal) {
                Ok((prepared, note)) => {
                    line.provider = portal
                        .and_then(|p| p.provider.get("providerName"))
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    line.steps = prepared
                        .request
                        .as_ref()
                        .map(|r| planner.keys(r))
                        .unwrap_or_default()
                        .into_iter()
                        .map(|k| (k, None))
                        .collect();
                    line.prepared = Some(prepared);
                    line.note = note;
                }
                Err(why) => invalid.push(format!("account {}: {why}", account.id)),
            }
        }
        lines.push(line);
    }
    lines.sort_by(|a, b| a.account.id.cmp(&b.account.id));
    if !invalid.is_empty() {
        return Err(Failure::refused(format!(
            "{} account(s) would get a request the functions reject, nothing was published: {}",
            invalid.len(),
            invalid.join("; ")
        ))
        .hint("fix their entries in the mapping file (--portals), or leave the accounts out with --exclude"));
    }
    Ok(lines)
}

/// Each candidate's steps' statuses as the ledger has them, and its fate from them and from
/// the state file (`published`).
pub fn settle(
    lines: &mut [Line],
    statuses: &HashMap<StepKey, Status>,
    published: &BTreeMap<String, PublishedEntry>,
    force: bool,
    state_name: &str,
) {
    for line in lines.iter_mut().filter(|l| l.prepared.is_some()) {
        for (key, status) in line.steps.iter_mut() {
            *status = statuses.get(key).copied();
        }
        let requested = published.get(&line.account.id);
        line.fate = decide(&line.steps, requested, force, state_name);
        if let (Fate::Skipped(_) | Fate::Publish, Some(r)) = (&line.fate, requested) {
            if line.steps.iter().all(|(_, s)| s.is_none()) {
                let when = format!("requested at {} (event id {})", r.at, r.event_id);
                line.note = Some(match line.note.take() {
                    Some(note) => format!("{note}; {when}"),
                    None => when,
                });
            }
        }
    }
}

/// Mapping entries that this run does not use at all.
pub fn unused_mappings(lines: &[Line], portals: &BTreeMap<String, PortalEntry>) -> Vec<String> {
    let listed: BTreeSet<&str> = lines.iter().map(|l| l.account.id.as_str()).collect();
    portals
        .iter()
        .filter(|(id, _)| !listed.contains(id.as_str()))
        .map(|(id, p)| format!("{} ({id})", p.label))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(step: &str) -> StepKey {
        StepKey::account("222222222222", step)
    }

    #[test]
    fn only_accounts_without_steps_are_published() {
        let entry = PublishedEntry {
            at: "2026-11-22T09:30:05Z".into(),
            event_id: "e".into(),
            provider: None,
        };
        let one = |s: Option<Status>| vec![(key("identity-center-instance"), s)];
        assert_eq!(decide(&one(None), None, false, "s"), Fate::Publish);
        assert_eq!(
            decide(&one(Some(Status::Ready)), None, false, "s"),
            Fate::Ready
        );
        assert_eq!(
            decide(&one(Some(Status::Failed)), None, false, "s"),
            Fate::Skipped(FAILED_REASON.into())
        );
        for s in [Status::InProgress, Status::Created] {
            assert_eq!(
                decide(&one(Some(s)), None, false, "s"),
                Fate::Skipped(IN_PROGRESS_REASON.into())
            );
        }
        assert!(
            matches!(decide(&one(None), Some(&entry), false, "s"), Fate::Skipped(r) if r.contains("earlier run"))
        );
        assert_eq!(decide(&one(None), Some(&entry), true, "s"), Fate::Publish);
        // A provider step still missing: published even though the instance is READY.
        let two = vec![
            (key("identity-center-instance"), Some(Status::Ready)),
            (key("web-identity-provider#p#n"), None),
        ];
        assert_eq!(decide(&two, None, false, "s"), Fate::Publish);
    }
}
