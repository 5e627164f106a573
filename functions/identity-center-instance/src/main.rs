//! Creates the IAM Identity Center account instance of each onboarded account, in that
//! account (AssumeRole into MEMBER_ROLE_NAME), and announces it once ACTIVE.

use onboarding::lambda;
use onboarding::steps::IdentityCenterInstance;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let init = lambda::init().await?;
    let step = IdentityCenterInstance::new(init.member_access())
        .with_management_account(init.settings.management_account_id.clone());
    lambda::serve("identity-center-instance", init.handler(step)).await
}
