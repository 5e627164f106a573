//! Makes sure the organization's Multi-party approval identity source exists (once per
//! organization, in the management account) whenever an account is onboarded. MPA is called
//! in APPROVAL_REGION (us-east-1) wherever the stack runs.

use onboarding::aws::mpa_client;
use onboarding::lambda;
use onboarding::steps::ApprovalIdentitySource;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let init = lambda::init().await?;
    let instance_arn = init.settings.require_org_instance()?.to_string();
    let region = match &init.settings.org_instance_region {
        Some(region) => region.clone(),
        None => init
            .config
            .region()
            .map(|r| r.to_string())
            .ok_or("ORG_INSTANCE_REGION is unset and the function has no Region")?,
    };
    let mpa = mpa_client(&init.config, &init.settings.approval_region);
    let step = ApprovalIdentitySource::new(mpa, instance_arn, region);
    lambda::serve("approval-identity-source", init.handler(step)).await
}
