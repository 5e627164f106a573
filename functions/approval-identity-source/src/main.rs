//! Makes sure the organization's Multi-party approval identity source exists (once per
//! organization, in the management account) whenever an account is onboarded.

use onboarding::handler::Handler;
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
    let step =
        ApprovalIdentitySource::new(aws_sdk_mpa::Client::new(&init.config), instance_arn, region);
    let handler = Handler::new(init.engine, step, init.settings.accept);
    lambda::serve("approval-identity-source", handler).await
}
