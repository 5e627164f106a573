//! Creates the WorkSpaces Web identity provider an onboarding request names, on the
//! account's portal (AssumeRole into MEMBER_ROLE_NAME in the portal's account).

use onboarding::aws::MemberAccess;
use onboarding::handler::Handler;
use onboarding::lambda;
use onboarding::steps::WebIdentityProvider;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let init = lambda::init().await?;
    let access = MemberAccess::new(&init.config, &init.settings.member_role_name);
    let secrets = aws_sdk_secretsmanager::Client::new(&init.config);
    let step = WebIdentityProvider::new(access, secrets);
    let handler = Handler::new(init.engine, step, init.settings.accept);
    lambda::serve("web-identity-provider", handler).await
}
