//! The request a ledger item stands for, rebuilt without its message: the key says which
//! account, portal and provider; the recorded fields say what was asked; the revision keeps
//! its place in time. Secrets are named only, and read by name again when they are needed.
//! The reconciler re-drives and audits steps with it, and a delivery that takes over a
//! generation creates with the request that generation's create was first made for.

use std::collections::BTreeMap;

use crate::events::{
    InstanceSpec, OnboardingRequest, Origin as RequestOrigin, WebIdentityProviderSpec,
};
use crate::ledger::{key::ORG_SCOPE_PREFIX, Fields, Record, Status, StepKey};
use crate::revision::{normalize_time, Revision};
use crate::step::Step;
use crate::steps::{ApprovalIdentitySource, IdentityCenterInstance, WebIdentityProvider};

/// The account named in rebuilt requests of the organization's step (it uses none).
const NO_ACCOUNT: &str = "000000000000";

/// Which step a ledger item is.
pub enum Kind {
    Instance,
    Web,
    Approval,
}

pub fn kind_of(key: &StepKey) -> Option<Kind> {
    let step = key.step.as_str();
    if step == IdentityCenterInstance::NAME {
        Some(Kind::Instance)
    } else if step.starts_with(WebIdentityProvider::NAME) {
        Some(Kind::Web)
    } else if step == ApprovalIdentitySource::NAME {
        Some(Kind::Approval)
    } else {
        None
    }
}

/// The request a step's ledger item stands for. A `READY` step stands for its applied state
/// (a pending update is the engine's to carry on); any other for the request its generation
/// is created with (`requested`), else what was applied.
pub fn request_of(record: &Record) -> Result<OnboardingRequest, String> {
    let recorded =
        |fields: &Option<Fields>, revision: &Option<Revision>| fields.clone().zip(revision.clone());
    let applied = recorded(&record.state, &record.applied_revision);
    let requested = recorded(&record.requested, &record.requested_revision);
    let (fields, revision) = match record.status {
        Status::Ready => applied.or(requested),
        _ => requested.or(applied),
    }
    .unwrap_or_else(|| {
        let unknown = Revision::parse(&format!("0000-00-00T00:00:00.000Z#{}", record.key));
        (Fields::new(), unknown)
    });
    request_from(&record.key, &fields, &revision)
}

/// The request for step `key` that asks for `fields`, at `revision`.
pub fn request_from(
    key: &StepKey,
    fields: &Fields,
    revision: &Revision,
) -> Result<OnboardingRequest, String> {
    let time = normalize_time(revision.time()).map(|_| revision.time().to_string());
    let mut request = OnboardingRequest {
        event_id: revision.event_id().to_string(),
        origin: RequestOrigin::OnboardingRequested,
        replay_name: None,
        time,
        account_id: key.account_id().unwrap_or(NO_ACCOUNT).to_string(),
        account_name: None,
        instance: InstanceSpec::default(),
        web_identity_provider: None,
    };
    if request.event_id.is_empty() {
        request.event_id = format!("reconciler:{key}");
    }
    let text = |name: &str| fields.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let map = |name: &str| -> BTreeMap<String, String> {
        fields
            .get(name)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    };
    match kind_of(key) {
        Some(Kind::Instance) => {
            request.instance = InstanceSpec {
                name: text("name"),
                tags: map("tags"),
            };
        }
        Some(Kind::Web) => {
            let rest = key
                .step
                .strip_prefix(WebIdentityProvider::NAME)
                .and_then(|r| r.strip_prefix('#'))
                .ok_or("the step key names no portal")?;
            let (portal, name) = rest
                .rsplit_once('#')
                .ok_or("the step key names no provider")?;
            let provider_type = text("type")
                .and_then(|t| t.parse().ok())
                .ok_or("the ledger holds no provider type for it (claimed by an older version)")?;
            request.web_identity_provider = Some(WebIdentityProviderSpec {
                portal_arn: portal.to_string(),
                portal_account_id: request.account_id.clone(),
                provider_name: name.to_string(),
                provider_type,
                details: map("details"),
                secret_id: text("secretId"),
                tags: map("tags"),
            });
        }
        Some(Kind::Approval) => {
            if !key.scope.starts_with(ORG_SCOPE_PREFIX) {
                return Err(format!("{key} is not an organization step"));
            }
        }
        None => return Err(format!("{key} is not a step this version knows")),
    }
    Ok(request)
}
