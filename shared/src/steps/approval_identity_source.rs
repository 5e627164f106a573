//! The organization's Multi-party approval identity source (mpa CreateIdentitySource): once
//! per organization, in the management account, pointing at the organization instance;
//! asynchronous (CREATING -> ACTIVE or ERROR).

use aws_sdk_mpa::types::{IamIdentityCenter, IdentitySourceParameters, IdentitySourceStatus};
use aws_sdk_mpa::Client;
use serde_json::json;

use crate::error::StepError;
use crate::events::OnboardingRequest;
use crate::ledger::key::ORG_SCOPE_PREFIX;
use crate::ledger::StepKey;
use crate::step::{Existing, Fields, Plan, Readiness, Step, CONFLICT};

pub struct ApprovalIdentitySource {
    client: Client,
    instance_arn: String,
    instance_region: String,
}

impl ApprovalIdentitySource {
    /// `client` acts in the management account.
    pub fn new(client: Client, instance_arn: String, instance_region: String) -> Self {
        Self {
            client,
            instance_arn,
            instance_region,
        }
    }
}

impl Step for ApprovalIdentitySource {
    const NAME: &'static str = "approval-identity-source";
    const READY_DETAIL_TYPE: &'static str = "Approval Identity Source Ready";
    const UPDATED_DETAIL_TYPE: &'static str = "Approval Identity Source Updated";
    type Input = ();
    type Api = Client;

    /// Every onboarding makes sure the organization's identity source exists; after the first,
    /// that costs one ledger request.
    fn plan(&self, _request: &OnboardingRequest) -> Result<Plan<()>, String> {
        Ok(Plan {
            key: StepKey::org(&self.instance_arn, Self::NAME),
            account_id: None,
            canonical: json!({ "instanceArn": self.instance_arn, "region": self.instance_region }),
            // Nothing to update: the organization's identity source has no settings a
            // request could change.
            desired: Default::default(),
            input: (),
        })
    }

    /// The organization's step asks for nothing: its request only needs an organization key.
    fn request_from(
        key: &StepKey,
        _fields: &Fields,
        request: OnboardingRequest,
    ) -> Result<OnboardingRequest, String> {
        if !key.scope.starts_with(ORG_SCOPE_PREFIX) {
            return Err(format!("{key} is not an organization step"));
        }
        Ok(request)
    }

    async fn connect(&self, _input: &()) -> Result<Client, StepError> {
        Ok(self.client.clone())
    }

    /// The organization's identity source for the organization instance is exactly what
    /// was asked, whoever made it.
    async fn lookup(&self, api: &Client, _input: &()) -> Result<Option<Existing>, StepError> {
        let mut pages = api.list_identity_sources().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StepError::from_sdk("mpa ListIdentitySources", e))?;
            let ours = page.identity_sources().iter().find(|s| {
                s.identity_source_parameters()
                    .and_then(|p| p.as_iam_identity_center().ok())
                    .and_then(|c| c.instance_arn())
                    == Some(self.instance_arn.as_str())
            });
            if let Some(source) = ours {
                if let Some(arn) = source.identity_source_arn() {
                    return Ok(Some(Existing::Matches {
                        arn: arn.to_string(),
                        created_at: source
                            .creation_time()
                            .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
                    }));
                }
            }
        }
        Ok(None)
    }

    async fn create(
        &self,
        api: &Client,
        _input: &(),
        client_token: &str,
    ) -> Result<String, StepError> {
        let center = IamIdentityCenter::builder()
            .instance_arn(&self.instance_arn)
            .region(&self.instance_region)
            .build()
            .map_err(|e| StepError::permanent("InvalidParameters", e.to_string()))?;
        let out = api
            .create_identity_source()
            .identity_source_parameters(
                IdentitySourceParameters::builder()
                    .iam_identity_center(center)
                    .build(),
            )
            .client_token(client_token)
            .send()
            .await
            .map_err(|e| StepError::from_sdk("mpa CreateIdentitySource", e))?;
        out.identity_source_arn()
            .map(str::to_string)
            .ok_or_else(|| {
                StepError::retryable(
                    "NoIdentitySourceArn",
                    "mpa CreateIdentitySource returned no IdentitySourceArn",
                )
            })
    }

    /// One identity source per organization: a second create is refused with a quota error.
    fn says_exists(&self, e: &StepError) -> bool {
        e.code() == CONFLICT || e.code() == "ServiceQuotaExceededException"
    }

    async fn readiness(&self, api: &Client, arn: &str) -> Result<Readiness, StepError> {
        let out = api
            .get_identity_source()
            .identity_source_arn(arn)
            .send()
            .await
            .map_err(|e| StepError::from_sdk("mpa GetIdentitySource", e))?;
        Ok(match out.status() {
            Some(IdentitySourceStatus::Active) => Readiness::Ready,
            Some(IdentitySourceStatus::Creating) | None => {
                Readiness::Pending(out.status().map_or("unknown", |s| s.as_str()).to_string())
            }
            Some(status) => Readiness::Failed(StepError::permanent(
                out.status_code().map_or(status.as_str(), |c| c.as_str()),
                format!(
                    "identity source {arn} is {}: {}",
                    status.as_str(),
                    out.status_message().unwrap_or("no message given")
                ),
            )),
        })
    }
}
