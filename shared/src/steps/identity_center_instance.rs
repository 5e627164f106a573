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
use crate::step::{Plan, Readiness, Step};

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

    /// An account holds at most one instance; it is ours when its name is the one we asked
    /// for. Any other instance is left alone (the create then fails with a Conflict).
    async fn lookup(&self, api: &Client, input: &Input) -> Result<Option<String>, StepError> {
        let mut pages = api.list_instances().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StepError::from_sdk("sso-admin ListInstances", e))?;
            let ours = page.instances().iter().find(|i| {
                i.owner_account_id()
                    .is_none_or(|owner| owner == input.account_id)
                    && i.name() == input.name.as_deref()
            });
            if let Some(arn) = ours.and_then(|i| i.instance_arn()) {
                return Ok(Some(arn.to_string()));
            }
        }
        Ok(None)
    }

    async fn create(
        &self,
        api: &Client,
        input: &Input,
        client_token: &str,
    ) -> Result<String, StepError> {
        let tags = input
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StepError::permanent("InvalidTag", e.to_string()))?;
        let out = api
            .create_instance()
            .client_token(client_token)
            .set_name(input.name.clone())
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .map_err(|e| StepError::from_sdk("sso-admin CreateInstance", e))?;
        out.instance_arn().map(str::to_string).ok_or_else(|| {
            StepError::retryable(
                "NoInstanceArn",
                "sso-admin CreateInstance returned no InstanceArn",
            )
        })
    }

    async fn readiness(&self, api: &Client, arn: &str) -> Result<Readiness, StepError> {
        let out = api
            .describe_instance()
            .instance_arn(arn)
            .send()
            .await
            .map_err(|e| StepError::from_sdk("sso-admin DescribeInstance", e))?;
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
