//! An IAM Identity Center account instance in the member account (sso-admin CreateInstance,
//! asynchronous: CREATE_IN_PROGRESS -> ACTIVE or CREATE_FAILED).

use std::collections::BTreeMap;

use aws_sdk_ssoadmin::types::{InstanceStatus, Tag};
use aws_sdk_ssoadmin::Client;
use serde_json::json;

use crate::aws::MemberAccess;
use crate::error::StepError;
use crate::events::OnboardingRequest;
use crate::ledger::StepKey;
use crate::step::{Existing, Fields, Plan, Readiness, Step};

use super::project_tags::{self, TAGS};

const NAME: &str = "name";

/// The fields a request specifies: a name if it gives one, tags if it gives any (a request
/// without tags, like every Control Tower event, has no preference about them).
fn desired(name: Option<&str>, tags: &BTreeMap<String, String>) -> Fields {
    let mut fields = Fields::new();
    if let Some(name) = name {
        fields.insert(NAME.into(), json!(name));
    }
    if !tags.is_empty() {
        fields.insert(TAGS.into(), json!(tags));
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
}

pub struct Input {
    account_id: String,
    name: Option<String>,
    tags: BTreeMap<String, String>,
}

impl IdentityCenterInstance {
    pub fn new(access: MemberAccess) -> Self {
        Self { access }
    }
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
            desired: desired(instance.name.as_deref(), &instance.tags),
            input: Input {
                account_id: request.account_id.clone(),
                name: instance.name.clone(),
                tags: instance.tags.clone(),
            },
        })
    }

    async fn connect(&self, input: &Input) -> Result<Client, StepError> {
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
                         holds one instance: delete it, then `onboarding retry`",
                        input.account_id,
                        status.as_str(),
                        instance.status_reason().unwrap_or("no reason given")
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
                if e.code() != "AccessDeniedException" {
                    return e;
                }
                // The role was assumed, so this is the organization's decision.
                StepError::permanent(
                    "AccountInstancesNotAllowed",
                    format!(
                        "{}; account {} may not have an IAM Identity Center account instance: \
                         the organization instance does not allow account instances, or an SCP \
                         denies sso:CreateInstance (or the member role lacks it). Enable account \
                         instances in the organization instance's settings (management account, \
                         IAM Identity Center > Settings) or change the SCP, then `onboarding retry`",
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
            let mut next: Option<String> = None;
            loop {
                let out = api
                    .list_tags_for_resource()
                    .instance_arn(arn)
                    .resource_arn(arn)
                    .set_next_token(next.take())
                    .send()
                    .await
                    .map_err(|e| StepError::from_sdk("sso-admin ListTagsForResource", e))?;
                for tag in out.tags() {
                    if ours.contains(tag.key()) {
                        tags.insert(tag.key().to_string(), tag.value().to_string());
                    }
                }
                match out.next_token() {
                    Some(token) if !token.is_empty() => next = Some(token.to_string()),
                    _ => break,
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
                    "instance {arn} is {}: {}; delete it, then `onboarding retry`",
                    status.as_str(),
                    out.status_reason().unwrap_or("no reason given")
                ),
            )),
        })
    }
}
