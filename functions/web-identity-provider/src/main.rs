//! Creates the WorkSpaces Web identity provider an onboarding request names, on the
//! account's portal (AssumeRole into MEMBER_ROLE_NAME in the portal's account).

use onboarding::lambda;
use onboarding::steps::WebIdentityProvider;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let init = lambda::init().await?;
    let secrets = aws_sdk_secretsmanager::Client::new(&init.config);
    let step = WebIdentityProvider::new(init.member_access(), secrets);
    lambda::serve("web-identity-provider", init.handler(step)).await
}
