//! Creates the IAM Identity Center account instance of each onboarded account, in that
//! account (AssumeRole into MEMBER_ROLE_NAME), and announces it once ACTIVE.

use onboarding::aws::MemberAccess;
use onboarding::handler::Handler;
use onboarding::lambda;
use onboarding::steps::IdentityCenterInstance;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let init = lambda::init().await?;
    let access = MemberAccess::new(&init.config, &init.settings.member_role_name);
    let step = IdentityCenterInstance::new(access);
    let handler = Handler::new(init.engine, step, init.settings.accept);
    lambda::serve("identity-center-instance", handler).await
}
