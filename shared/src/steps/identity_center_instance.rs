//! An IAM Identity Center account instance in the member account (sso-admin CreateInstance,
//! asynchronous: CREATE_IN_PROGRESS -> ACTIVE or CREATE_FAILED).

use std::collections::BTreeMap;

use aws_sdk_ssoadmin::types::{InstanceStatus, Tag};
use aws_sdk_ssoadmin::Client;
use serde_json::json;

use crate::aws::MemberAccess;
use crate::error::StepError;
use crate::events::{InstanceSpec, OnboardingRequest};
use crate::ledger::StepKey;
use crate::rebuild::text;
use crate::step::{Existing, Fields, Plan, Readiness, Step};

use super::project_tags::{self, TAGS};

/// IAM's words when no identity-based policy allows a call (as opposed to the organization's
/// account-instance setting or an SCP).
const NO_POLICY_ALLOWS: &str = "because no identity-based policy allows";

const NAME: &str = "name";

/// The fields a request specifies: a name if it gives one, each tag it sets or removes (a
/// request without tags, like every Control Tower event, has no preference about them).
fn desired(instance: &InstanceSpec) -> Fields {
    let mut fields = Fields::new();
    if let Some(name) = &instance.name {
        fields.insert(NAME.into(), json!(name));
    }
    if let Some(tags) = project_tags::asked(&instance.tags, &instance.removed_tags) {
        fields.insert(TAGS.into(), tags);
    }
    fields
}

fn sso_tags(tags: &BTreeMap<String, String>) -> Result<Vec<Tag>, StepError> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StepError::permanent("InvalidTag", e.to_string()))
}

pub struct IdentityCenterInstance {
    access: MemberAccess,
    /// The organization's management account, when the function knows it
    /// (`MANAGEMENT_ACCOUNT_ID`): a request for it is refused before any call.
    management_account: Option<String>,
}

pub struct Input {
    account_id: String,
    name: Option<String>,
    tags: BTreeMap<String, String>,
}

impl IdentityCenterInstance {
    pub fn new(access: MemberAccess) -> Self {
        Self {
            access,
            management_account: None,
        }
    }

    /// Refuses requests for `management_account` before any call (none: the service's own
    /// refusal is still recognised, after the calls it took).
    pub fn with_management_account(mut self, management_account: Option<String>) -> Self {
        self.management_account = management_account;
        self
    }
}

/// What AWS answers CreateInstance in the organization's management account (HTTP 400).
const MANAGEMENT_ACCOUNT_REFUSED: &str = "Organization management account is not allowed";

/// The permanent failure of a request for the management account: nothing to retry, and
/// what to do instead.
fn for_management_account(account_id: &str) -> StepError {
    StepError::permanent(
        "ManagementAccount",
        format!(
            "account {account_id} is the organization's management account: IAM Identity \
             Center account instances are for member accounts (AWS refuses CreateInstance in \
             the management account), and the organization instance already serves the \
             management account. Nothing was created; send onboarding requests for member \
             accounts only"
        ),
    )
}

/// A request that can never apply, known before any call: an instance for the management
/// account. (An organization instance in an opt-in Region also blocks account instances, but
/// nothing the function holds tells where the organization instance lives or whether that
/// Region is opt-in without calls of its own: the service's refusal is recognised instead,
/// see [`refused`].)
fn never_applies(account_id: &str, management_account: Option<&str>) -> Option<StepError> {
    (management_account == Some(account_id)).then(|| for_management_account(account_id))
}

/// The service's refusals of CreateInstance that no retry changes, in words saying what to
/// do: the management account, and an organization instance in an opt-in Region.
fn refused(e: &StepError, account_id: &str) -> Option<StepError> {
    let message = &e.reason().message;
    if message.contains(MANAGEMENT_ACCOUNT_REFUSED) {
        return Some(for_management_account(account_id));
    }
    if e.code() == "AccessDeniedException" && message.contains("opt-in Region") {
        return Some(StepError::permanent(
            "AccountInstancesBlockedByOptInRegion",
            format!(
                "{message}; account {account_id} cannot have an IAM Identity Center account \
                 instance while the organization instance lives in an opt-in Region (AWS blocks \
                 account instances then, whatever the organization's setting): no request can \
                 change that. Give the account's users access through the organization \
                 instance instead, or move the organization instance to a Region enabled by \
                 default (delete it and enable it again there), then `onboarding retry`"
            ),
        ));
    }
    None
}

impl Step for IdentityCenterInstance {
    const NAME: &'static str = "identity-center-instance";
    const READY_DETAIL_TYPE: &'static str = "Identity Center Instance Ready";
    const UPDATED_DETAIL_TYPE: &'static str = "Identity Center Instance Updated";
    type Input = Input;
    type Api = Client;

    fn plan(&self, request: &OnboardingRequest) -> Result<Plan<Input>, String> {
        let instance = &request.instance;
        Ok(Plan {
            key: StepKey::account(&request.account_id, Self::NAME),
            account_id: Some(request.account_id.clone()),
            canonical: json!({
                "accountId": request.account_id,
                "name": instance.name,
                "tags": instance.tags,
            }),
            desired: desired(instance),
            input: Input {
                account_id: request.account_id.clone(),
                name: instance.name.clone(),
                tags: instance.tags.clone(),
            },
        })
    }

    fn request_from(
        _key: &StepKey,
        fields: &Fields,
        mut request: OnboardingRequest,
    ) -> Result<OnboardingRequest, String> {
        let (tags, removed_tags) = project_tags::split(fields);
        request.instance = InstanceSpec {
            name: text(fields, NAME),
            tags,
            removed_tags,
        };
        Ok(request)
    }

    /// Refuses a request that can never apply before assuming any role.
    async fn connect(&self, input: &Input) -> Result<Client, StepError> {
        if let Some(e) = never_applies(&input.account_id, self.management_account.as_deref()) {
            return Err(e);
        }
        Ok(Client::new(
            &self.access.config_for(&input.account_id, None).await?,
        ))
    }

    /// An account holds at most one instance, so the account's instance *is* the step's
    /// resource, whoever made it: adoptable while it is `ACTIVE` or being created. A failed
    /// one is not adoptable (permanent, naming it); one being deleted is not there yet.
    async fn lookup(&self, api: &Client, input: &Input) -> Result<Option<Existing>, StepError> {
        let mut pages = api.list_instances().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StepError::from_sdk("sso-admin ListInstances", e))?;
            let found = page.instances().iter().find(|i| {
                i.owner_account_id()
                    .is_none_or(|owner| owner == input.account_id)
            });
            let Some((instance, arn)) = found.and_then(|i| Some((i, i.instance_arn()?))) else {
                continue;
            };
            let created_at = instance
                .created_date()
                .and_then(|t| std::time::SystemTime::try_from(*t).ok());
            return match instance.status() {
                Some(InstanceStatus::Active | InstanceStatus::CreateInProgress) | None => {
                    Ok(Some(Existing::Matches {
                        arn: arn.to_string(),
                        created_at,
                    }))
                }
                Some(InstanceStatus::DeleteInProgress) => Err(StepError::not_yet(
                    "InstanceBeingDeleted",
                    format!(
                        "account {} has instance {arn} being deleted; a new one is created \
                         once it is gone",
                        input.account_id
                    ),
                )),
                Some(status) => Ok(Some(Existing::Conflicts(StepError::permanent(
                    "InstanceNotAdoptable",
                    format!(
                        "account {} already has instance {arn} in status {} ({}); an account \
                         holds one instance: `onboarding retry {} {} --replace` deletes a \
                         CREATE_FAILED one and starts a new generation",
                        input.account_id,
                        status.as_str(),
                        instance.status_reason().unwrap_or("no reason given"),
                        input.account_id,
                        Self::NAME,
                    ),
                )))),
            };
        }
        Ok(None)
    }

    async fn create(
        &self,
        api: &Client,
        input: &Input,
        client_token: &str,
    ) -> Result<String, StepError> {
        let tags = sso_tags(&input.tags)?;
        let out = api
            .create_instance()
            .client_token(client_token)
            .set_name(input.name.clone())
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .map_err(|e| {
                let e = StepError::from_sdk("sso-admin CreateInstance", e);
                if let Some(refusal) = refused(&e, &input.account_id) {
                    return refusal;
                }
                // A role without the action (or a dependent action) says so in IAM's words;
                // the message names the action to grant.
                if e.code() != "AccessDeniedException"
                    || e.reason().message.contains(NO_POLICY_ALLOWS)
                {
                    return e;
                }
                // The role was assumed, so this is the organization's decision.
                StepError::permanent(
                    "AccountInstancesNotAllowed",
                    format!(
                        "{}; account {} may not have an IAM Identity Center account instance: \
                         the organization instance does not allow account instances, or an SCP \
                         denies sso:CreateInstance (or the member role lacks it), or the \
                         organization instance lives in an opt-in Region (which blocks account \
                         instances whatever the setting). Enable account instances in the \
                         organization instance's settings (management account, IAM Identity \
                         Center > Settings) or change the SCP, then `onboarding retry` (an \
                         organization instance in an opt-in Region must be moved to a Region \
                         enabled by default first)",
                        e.reason().message,
                        input.account_id
                    ),
                )
            })?;
        out.instance_arn().map(str::to_string).ok_or_else(|| {
            StepError::retryable(
                "NoInstanceArn",
                "sso-admin CreateInstance returned no InstanceArn",
            )
        })
    }

    /// The name (DescribeInstance) and the values of the tag keys the project set or wants
    /// (ListTagsForResource); other tags are someone else's and never compared.
    async fn current(
        &self,
        api: &Client,
        _input: &Input,
        arn: &str,
        applied: &Fields,
        wanted: &Fields,
    ) -> Result<Fields, StepError> {
        let mut now = Fields::new();
        if wanted.contains_key(NAME) {
            let out = api
                .describe_instance()
                .instance_arn(arn)
                .send()
                .await
                .map_err(|e| StepError::from_sdk("sso-admin DescribeInstance", e))?;
            if let Some(name) = out.name() {
                now.insert(NAME.into(), json!(name));
            }
        }
        let ours = project_tags::keys_of(applied, wanted);
        if !ours.is_empty() {
            let mut tags = BTreeMap::new();
            let mut pages = api
                .list_tags_for_resource()
                .instance_arn(arn)
                .resource_arn(arn)
                .into_paginator()
                .items()
                .send();
            while let Some(tag) = pages.next().await {
                let tag =
                    tag.map_err(|e| StepError::from_sdk("sso-admin ListTagsForResource", e))?;
                if ours.contains(tag.key()) {
                    tags.insert(tag.key().to_string(), tag.value().to_string());
                }
            }
            if !tags.is_empty() {
                now.insert(TAGS.into(), json!(tags));
            }
        }
        Ok(now)
    }

    /// A new name through UpdateInstance; the project's tags through TagResource (new or
    /// changed values) and UntagResource (keys the project set that are no longer wanted).
    /// Each call sets an absolute value, so a repeat after a lost response changes nothing.
    async fn update(
        &self,
        api: &Client,
        _input: &Input,
        arn: &str,
        applied: &Fields,
        wanted: &Fields,
        _token: &str,
    ) -> Result<(), StepError> {
        if let Some(name) = wanted.get(NAME).and_then(|v| v.as_str()) {
            if applied.get(NAME) != wanted.get(NAME) {
                api.update_instance()
                    .instance_arn(arn)
                    .name(name)
                    .send()
                    .await
                    .map_err(|e| StepError::from_sdk("sso-admin UpdateInstance", e))?;
            }
        }
        let tags = project_tags::change(applied, wanted);
        if !tags.remove.is_empty() {
            api.untag_resource()
                .instance_arn(arn)
                .resource_arn(arn)
                .set_tag_keys(Some(tags.remove))
                .send()
                .await
                .map_err(|e| StepError::from_sdk("sso-admin UntagResource", e))?;
        }
        if !tags.set.is_empty() {
            api.tag_resource()
                .instance_arn(arn)
                .resource_arn(arn)
                .set_tags(Some(sso_tags(&tags.set)?))
                .send()
                .await
                .map_err(|e| StepError::from_sdk("sso-admin TagResource", e))?;
        }
        Ok(())
    }

    async fn readiness(&self, api: &Client, arn: &str) -> Result<Readiness, StepError> {
        let out = match api.describe_instance().instance_arn(arn).send().await {
            Ok(out) => out,
            Err(e) => {
                let e = StepError::from_sdk("sso-admin DescribeInstance", e);
                // A deleted instance may be answered as not found or as access denied:
                // the account's own list tells which.
                if !["ResourceNotFoundException", "AccessDeniedException"].contains(&e.code()) {
                    return Err(e);
                }
                let listed = api
                    .list_instances()
                    .send()
                    .await
                    .map_err(|e| StepError::from_sdk("sso-admin ListInstances", e))?;
                if listed
                    .instances()
                    .iter()
                    .any(|i| i.instance_arn() == Some(arn))
                {
                    return Err(e);
                }
                return Err(StepError::permanent(
                    "ResourceNotFoundException",
                    format!("instance {arn} no longer exists in its account"),
                ));
            }
        };
        Ok(match out.status() {
            Some(InstanceStatus::Active) => Readiness::Ready,
            Some(InstanceStatus::CreateInProgress) | None => {
                Readiness::Pending(out.status().map_or("unknown", |s| s.as_str()).to_string())
            }
            Some(status) => Readiness::Failed(StepError::permanent(
                status.as_str(),
                format!(
                    "instance {arn} is {}: {}; an account holds one instance: `onboarding \
                     retry ACCOUNT identity-center-instance --replace` deletes it and starts a \
                     new generation",
                    status.as_str(),
                    out.status_reason().unwrap_or("no reason given")
                ),
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANAGEMENT: &str = "111111111111";

    #[test]
    fn the_management_account_is_refused_before_any_call() {
        let e = never_applies(MANAGEMENT, Some(MANAGEMENT)).expect("refused");
        assert_eq!(e.code(), "ManagementAccount");
        assert!(!e.is_retryable());
        let message = &e.reason().message;
        for needle in [MANAGEMENT, "member accounts", "organization instance"] {
            assert!(message.contains(needle), "{needle:?} in {message}");
        }
        assert_eq!(never_applies("222222222222", Some(MANAGEMENT)), None);
        assert_eq!(
            never_applies(MANAGEMENT, None),
            None,
            "unknown: the service decides"
        );
    }

    #[test]
    fn the_services_refusals_that_never_change_say_what_to_do() {
        let answer = StepError::permanent(
            "ValidationException",
            "sso-admin CreateInstance: Organization management account is not allowed to \
             perform the operation.",
        );
        assert_eq!(
            refused(&answer, MANAGEMENT).map(|e| e.code().to_string()),
            Some("ManagementAccount".into())
        );
        let opt_in = StepError::permanent(
            "AccessDeniedException",
            "sso-admin CreateInstance: ... account instances of IAM Identity Center can't be \
             created while the organization instance arn:aws:sso:::instance/ssoins-1 is in an \
             opt-in Region",
        );
        let e = refused(&opt_in, "222222222222").expect("recognised");
        assert_eq!(e.code(), "AccountInstancesBlockedByOptInRegion");
        assert!(!e.is_retryable());
        assert!(e.reason().message.contains("222222222222"));
        assert!(e.reason().message.contains("Region enabled by default"));
        let setting = StepError::permanent(
            "AccessDeniedException",
            "account instances are not enabled for the organization",
        );
        assert_eq!(refused(&setting, "222222222222"), None);
    }
}
