//! IAM through the real SDK clients: identity policies, dependent actions, AssumeRole
//! trust, explicit denies, conditions, and the forwarder in front of another service.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_credential_types::Credentials;
use aws_sdk_ssoadmin::error::ProvideErrorMetadata;
use common::*;
use identity_emulator::{AccountConfig, Config, Emulator, PolicySet, MEMBER_ROLE};

const PORTAL: &str =
    "arn:aws:workspaces-web:us-east-1:222222222222:portal/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b";
const MEMBER_NAME: &str = "IdentityOnboardingMemberRole";

/// The policies as the renderer prints them (placeholders included).
const POLICIES: &str = r#"{
  "principals": {
    "InstanceRole": {"arn": "${InstanceRole.Arn}", "policies": [{"Version": "2012-10-17", "Statement": [
      {"Sid": "Member", "Effect": "Allow", "Action": "sts:AssumeRole",
       "Resource": "arn:${AWS::Partition}:iam::*:role/IdentityOnboardingMemberRole"},
      {"Sid": "Ledger", "Effect": "Allow", "Action": ["dynamodb:UpdateItem", "dynamodb:GetItem"],
       "Resource": "${LedgerTable.Arn}"}]}]},
    "ApprovalRole": {"arn": "arn:aws:iam::111111111111:role/identity-onboarding/ApprovalRole",
      "policies": [{"Statement": [
      {"Effect": "Allow", "Action": ["mpa:CreateIdentitySource", "mpa:ListIdentitySources"], "Resource": "*"},
      {"Effect": "Allow", "Action": "mpa:GetIdentitySource",
       "Resource": "arn:${AWS::Partition}:mpa:us-east-1:${AWS::AccountId}:identity-source/*"},
      {"Effect": "Allow", "Action": "sso:CreateApplication",
       "Resource": ["${OrganizationInstanceArn}", "arn:${AWS::Partition}:sso::aws:applicationProvider/mpa"]},
      {"Effect": "Allow", "Action": ["sso:DescribeApplication", "sso:PutApplicationAssignmentConfiguration",
         "sso:PutApplicationGrant", "sso:PutApplicationAuthenticationMethod", "sso:PutApplicationAccessScope"],
       "Resource": ["${OrganizationInstanceArn}", "arn:${AWS::Partition}:sso::${AWS::AccountId}:application/*"],
       "Condition": {"StringEqualsIfExists": {"aws:CalledViaLast": "mpa.amazonaws.com"}}},
      {"Effect": "Allow", "Action": "sso:DescribeInstance", "Resource": "${OrganizationInstanceArn}"},
      {"Effect": "Allow", "Action": "sso:ListInstances", "Resource": "*"}]}]},
    "Outsider": {"arn": "arn:aws:iam::111111111111:role/Outsider", "policies": [{"Statement": [
      {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}]},
    "Reader": {"arn": "arn:aws:iam::111111111111:role/identity-onboarding/Reader", "policies": [{"Statement": [
      {"Effect": "Allow", "Action": "sso:ListInstances", "Resource": "*"}]}]}
  },
  "member_role": {
    "name": "IdentityOnboardingMemberRole",
    "path": "/",
    "trust": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
      "Principal": {"AWS": "arn:${AWS::Partition}:iam::111111111111:root"}, "Action": "sts:AssumeRole",
      "Condition": {"ArnLike": {"aws:PrincipalArn": ["arn:aws:iam::111111111111:role/identity-onboarding/*"]}}}]},
    "policies": [{"Version": "2012-10-17", "Statement": [
      {"Sid": "Instances", "Effect": "Allow",
       "Action": ["sso:CreateInstance", "sso:DescribeInstance", "sso:ListInstances", "sso:DeleteInstance"],
       "Resource": "*"},
      {"Sid": "InstanceArns", "Effect": "Allow", "Action": ["sso:DescribeInstance", "sso:DeleteInstance"],
       "Resource": "arn:${AWS::Partition}:sso:::instance/*"},
      {"Sid": "LinkedRole", "Effect": "Allow", "Action": "iam:CreateServiceLinkedRole",
       "Resource": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/sso.amazonaws.com/AWSServiceRoleForSSO",
       "Condition": {"StringEquals": {"iam:AWSServiceName": "sso.amazonaws.com"}}},
      {"Sid": "Store", "Effect": "Allow",
       "Action": ["identitystore:CreateIdentityStore", "identitystore:DeleteIdentityStore", "organizations:DescribeOrganization"],
       "Resource": "*"},
      {"Sid": "NeverDelete", "Effect": "Deny", "Action": "sso:DeleteInstance", "Resource": "*"},
      {"Sid": "Providers", "Effect": "Allow",
       "Action": ["workspaces-web:CreateIdentityProvider", "workspaces-web:ListIdentityProviders"],
       "Resource": "arn:${AWS::Partition}:workspaces-web:*:${AWS::AccountId}:portal/*"}]}]
  }
}"#;

fn policies() -> PolicySet {
    let bindings: BTreeMap<String, String> = [
        (
            "InstanceRole.Arn",
            "arn:aws:iam::111111111111:role/identity-onboarding/InstanceRole",
        ),
        (
            "LedgerTable.Arn",
            "arn:aws:dynamodb:us-east-1:111111111111:table/Ledger",
        ),
        (
            "OrganizationInstanceArn",
            "arn:aws:sso:::instance/ssoins-72230000a1b2c3d4",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    PolicySet::from_json(POLICIES)
        .unwrap()
        .bind(&bindings)
        .unwrap()
}

fn enforcing(set: PolicySet) -> Config {
    fast_config()
        .with_account(AccountConfig::new(MEMBER).with_portal(PORTAL))
        .with_iam(set)
}

/// Credentials whose access key id names a principal of the policy set.
fn as_principal(emu: &Emulator, principal: &str) -> aws_config::SdkConfig {
    sdk_config_with(
        emu,
        Credentials::new(principal, "secret", None, None, "static"),
        1,
    )
}

type AssumeRoleError =
    aws_sdk_sts::error::SdkError<aws_sdk_sts::operation::assume_role::AssumeRoleError>;

async fn assume(
    emu: &Emulator,
    principal: &str,
    account: &str,
) -> Result<aws_config::SdkConfig, AssumeRoleError> {
    let out = sts(&as_principal(emu, principal))
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/{MEMBER_NAME}"))
        .role_session_name("onboarding")
        .send()
        .await?;
    let c = out.credentials().expect("credentials");
    Ok(sdk_config_with(
        emu,
        Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "assumed",
        ),
        1,
    ))
}

fn observed(emu: &Emulator, principal: &str, action: &str, allowed: bool) -> bool {
    emu.observed()
        .contains(&(principal.to_string(), action.to_string(), allowed))
}

#[tokio::test]
async fn an_allowed_call_passes_and_is_observed() {
    let emu = start(enforcing(policies())).await;
    let member = assume(&emu, "InstanceRole", MEMBER).await.unwrap();
    let me = sts(&member).get_caller_identity().send().await.unwrap();
    assert_eq!(
        me.arn(),
        Some("arn:aws:sts::222222222222:assumed-role/IdentityOnboardingMemberRole/onboarding")
    );
    let created = sso(&member)
        .create_instance()
        .name("team")
        .send()
        .await
        .unwrap();
    sso(&member)
        .describe_instance()
        .instance_arn(created.instance_arn().unwrap())
        .send()
        .await
        .unwrap();
    assert!(observed(&emu, "InstanceRole", "sts:AssumeRole", true));
    assert!(observed(&emu, MEMBER_ROLE, "sso:CreateInstance", true));
    assert!(observed(
        &emu,
        MEMBER_ROLE,
        "iam:CreateServiceLinkedRole",
        true
    ));
    assert!(observed(
        &emu,
        MEMBER_ROLE,
        "organizations:DescribeOrganization",
        true
    ));
    assert!(observed(&emu, MEMBER_ROLE, "sso:DescribeInstance", true));
    // GetCallerIdentity needs no permission and is not observed
    assert!(!emu
        .observed()
        .iter()
        .any(|(_, a, _)| a == "sts:GetCallerIdentity"));

    // the admin API shows the same
    let (status, body) = raw(&emu, "GET", "/_emulator/iam/observed", &[], b"").await;
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(list
        .as_array()
        .unwrap()
        .contains(&serde_json::json!({"principal": "InstanceRole", "action": "sts:AssumeRole", "allowed": true})));
}

#[tokio::test]
async fn a_missing_action_is_access_denied_naming_action_principal_and_resource() {
    let emu = start(enforcing(
        policies().without_action(MEMBER_ROLE, "sso:ListInstances"),
    ))
    .await;
    let member = assume(&emu, "InstanceRole", MEMBER).await.unwrap();
    let err = sso(&member).list_instances().send().await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 403);
    assert_eq!(
        err.message(),
        Some(
            "User: arn:aws:sts::222222222222:assumed-role/IdentityOnboardingMemberRole/onboarding \
             is not authorized to perform: sso:ListInstances on resource: * because no \
             identity-based policy allows the sso:ListInstances action"
        )
    );
    assert!(observed(&emu, MEMBER_ROLE, "sso:ListInstances", false));

    // a function role acting directly: the caller is its Lambda session
    let reader = as_principal(&emu, "Reader");
    sso(&reader).list_instances().send().await.unwrap();
    let err = mpa(&reader)
        .list_identity_sources()
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    let message = err.message().unwrap();
    assert!(
        message.starts_with(
            "User: arn:aws:sts::111111111111:assumed-role/Reader/function is not authorized to \
             perform: mpa:ListIdentitySources on resource: *"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn a_missing_dependent_action_of_create_instance_is_denied_by_name() {
    let set = policies().without_action(MEMBER_ROLE, "identitystore:CreateIdentityStore");
    let emu = start(enforcing(set)).await;
    let member = assume(&emu, "InstanceRole", MEMBER).await.unwrap();
    let err = sso(&member).create_instance().send().await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    let message = err.message().unwrap();
    assert!(
        message.contains("perform: identitystore:CreateIdentityStore on resource: *"),
        "{message}"
    );
    assert!(observed(&emu, MEMBER_ROLE, "sso:CreateInstance", true));
    assert!(observed(
        &emu,
        MEMBER_ROLE,
        "identitystore:CreateIdentityStore",
        false
    ));
    // nothing was created
    assert_eq!(emu.counters().created("CreateInstance"), 0);
}

#[tokio::test]
async fn conditions_are_evaluated() {
    // StringEquals on iam:AWSServiceName: another service's linked role does not do
    let text = POLICIES.replace(
        r#""iam:AWSServiceName": "sso.amazonaws.com""#,
        r#""iam:AWSServiceName": "workspaces-web.amazonaws.com""#,
    );
    let bindings: BTreeMap<String, String> = [
        (
            "InstanceRole.Arn",
            "arn:aws:iam::111111111111:role/identity-onboarding/InstanceRole",
        ),
        (
            "LedgerTable.Arn",
            "arn:aws:dynamodb:us-east-1:111111111111:table/Ledger",
        ),
        (
            "OrganizationInstanceArn",
            "arn:aws:sso:::instance/ssoins-72230000a1b2c3d4",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let set = PolicySet::from_json(&text)
        .unwrap()
        .bind(&bindings)
        .unwrap();
    let emu = start(enforcing(set)).await;
    let member = assume(&emu, "InstanceRole", MEMBER).await.unwrap();
    let err = sso(&member).create_instance().send().await.unwrap_err();
    assert!(
        err.message()
            .unwrap()
            .contains("perform: iam:CreateServiceLinkedRole on resource: arn:aws:iam::222222222222:role/aws-service-role/sso.amazonaws.com/AWSServiceRoleForSSO"),
        "{:?}",
        err.message()
    );

    // StringEqualsIfExists aws:CalledViaLast: MPA's calls on the caller's behalf carry it
    let emu = start(enforcing(policies())).await;
    let approval = as_principal(&emu, "ApprovalRole");
    let org = emu.config().organization_instance_arn().to_string();
    let params = aws_sdk_mpa::types::IdentitySourceParameters::builder()
        .iam_identity_center(
            aws_sdk_mpa::types::IamIdentityCenter::builder()
                .instance_arn(&org)
                .region("us-east-1")
                .build()
                .unwrap(),
        )
        .build();
    let created = mpa(&approval)
        .create_identity_source()
        .identity_source_parameters(params.clone())
        .send()
        .await
        .unwrap();
    mpa(&approval)
        .get_identity_source()
        .identity_source_arn(created.identity_source_arn().unwrap())
        .send()
        .await
        .unwrap();
    assert!(observed(
        &emu,
        "ApprovalRole",
        "sso:PutApplicationGrant",
        true
    ));
    assert!(observed(
        &emu,
        "ApprovalRole",
        "sso:CreateApplication",
        true
    ));

    // the application setup limited to calls via another service is refused
    let set = PolicySet::from_json(&POLICIES.replace(
        r#""aws:CalledViaLast": "mpa.amazonaws.com""#,
        r#""aws:CalledViaLast": "cloudformation.amazonaws.com""#,
    ))
    .unwrap()
    .bind(&bindings)
    .unwrap();
    let emu = start(enforcing(set)).await;
    let err = mpa(&as_principal(&emu, "ApprovalRole"))
        .create_identity_source()
        .identity_source_parameters(params)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert!(
        err.message().unwrap().contains("perform: sso:DescribeApplication on resource: arn:aws:sso:::instance/ssoins-72230000a1b2c3d4"),
        "{:?}",
        err.message()
    );
}

#[tokio::test]
async fn an_explicit_deny_wins() {
    let emu = start(enforcing(policies())).await;
    let member = assume(&emu, "InstanceRole", MEMBER).await.unwrap();
    let arn = sso(&member)
        .create_instance()
        .send()
        .await
        .unwrap()
        .instance_arn()
        .unwrap()
        .to_string();
    let err = sso(&member)
        .delete_instance()
        .instance_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert!(
        err.message().unwrap().ends_with(&format!(
            "perform: sso:DeleteInstance on resource: {arn} with an explicit deny in an identity-based policy"
        )),
        "{:?}",
        err.message()
    );
}

#[tokio::test]
async fn assume_role_needs_the_callers_permission_the_trust_and_the_role() {
    let emu = start(enforcing(policies())).await;
    let denied = |e: AssumeRoleError| {
        let e = e.into_service_error();
        assert_eq!(e.code(), Some("AccessDenied"));
        e.message().unwrap_or_default().to_string()
    };
    // the trust policy admits only identity-onboarding roles
    let message = denied(assume(&emu, "Outsider", MEMBER).await.unwrap_err());
    assert_eq!(
        message,
        "User: arn:aws:sts::111111111111:assumed-role/Outsider/function is not authorized to \
         perform: sts:AssumeRole on resource: arn:aws:iam::222222222222:role/IdentityOnboardingMemberRole"
    );
    // trusted by the role, but its own policy lacks sts:AssumeRole
    let message = denied(assume(&emu, "Reader", MEMBER).await.unwrap_err());
    assert!(
        message.ends_with("because no identity-based policy allows the sts:AssumeRole action"),
        "{message}"
    );
    assert!(observed(&emu, "Reader", "sts:AssumeRole", false));
    // no member role in the management account (service-managed StackSets skip it)
    let message = denied(assume(&emu, "InstanceRole", MANAGEMENT).await.unwrap_err());
    assert!(
        message.contains("role/IdentityOnboardingMemberRole"),
        "{message}"
    );
    // nor under another name
    let err = sts(&as_principal(&emu, "Outsider"))
        .assume_role()
        .role_arn(format!(
            "arn:aws:iam::{MEMBER}:role/OrganizationAccountAccessRole"
        ))
        .role_session_name("x1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.into_service_error().code(), Some("AccessDenied"));
    // the trusted role gets in; the root user (any other key) is never evaluated
    assume(&emu, "InstanceRole", MEMBER).await.unwrap();
    assume(&emu, "AKIDLOCALTEST", MEMBER).await.unwrap();
}

#[tokio::test]
async fn late_and_refused_roles_still_apply() {
    let config = fast_config()
        .with_account(AccountConfig::new(MEMBER).role_appearing_after(150))
        .with_account(AccountConfig::new("333333333333").refusing_role(MEMBER_NAME))
        .with_iam(policies());
    let emu = start(config).await;
    assert!(assume(&emu, "InstanceRole", MEMBER).await.is_err());
    assert!(assume(&emu, "InstanceRole", "333333333333").await.is_err());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assume(&emu, "InstanceRole", MEMBER).await.unwrap();
}

#[tokio::test]
async fn list_identity_providers_is_on_identity_provider_not_portal() {
    let emu = start(enforcing(policies())).await;
    let member = assume(&emu, "InstanceRole", MEMBER).await.unwrap();
    web(&member)
        .create_identity_provider()
        .portal_arn(PORTAL)
        .identity_provider_name("corp")
        .identity_provider_type(aws_sdk_workspacesweb::types::IdentityProviderType::Saml)
        .identity_provider_details("MetadataURL", "https://idp.example.com/metadata")
        .send()
        .await
        .unwrap();
    let err = web(&member)
        .list_identity_providers()
        .portal_arn(PORTAL)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert!(err.message().unwrap().contains(
        "on resource: arn:aws:workspaces-web:us-east-1:222222222222:identityProvider/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b/*"
    ));
}

#[tokio::test]
async fn the_root_user_is_allowed_everything_and_unbound_policies_are_refused() {
    let emu = start(enforcing(policies())).await;
    let root = sdk_config_with(
        &emu,
        Credentials::new("AKIDLOCALTEST", "test", None, None, "static"),
        1,
    );
    sso(&root).list_instances().send().await.unwrap();
    assert!(emu.observed().is_empty());

    let unbound = PolicySet::from_json(POLICIES).unwrap();
    let err = identity_emulator::start(fast_config().with_iam(unbound), "127.0.0.1:0")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("${InstanceRole.Arn}"), "{err}");
}

/// A stand-in for moto: answers every request with what it received.
async fn echo_server() -> (String, Arc<AtomicUsize>) {
    use http_body_util::{BodyExt, Full};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: http::Request<hyper::body::Incoming>| {
                        let counter = counter.clone();
                        async move {
                            counter.fetch_add(1, Ordering::SeqCst);
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let echo = serde_json::json!({
                                "method": parts.method.as_str(),
                                "path": parts.uri.to_string(),
                                "target": parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()),
                                "body": String::from_utf8_lossy(&body),
                            });
                            let mut resp = http::Response::new(Full::new(bytes::Bytes::from(
                                echo.to_string(),
                            )));
                            resp.headers_mut()
                                .insert("x-moto", http::HeaderValue::from_static("yes"));
                            *resp.status_mut() = http::StatusCode::CREATED;
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, hits)
}

fn dynamodb_headers(key: &str) -> Vec<(String, String)> {
    vec![
        (
            "Authorization".to_string(),
            format!("AWS4-HMAC-SHA256 Credential={key}/20250101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0"),
        ),
        ("X-Amz-Target".to_string(), "DynamoDB_20120810.UpdateItem".to_string()),
        ("Content-Type".to_string(), "application/x-amz-json-1.0".to_string()),
    ]
}

#[tokio::test]
async fn the_forwarder_passes_allowed_calls_on_and_denies_others() {
    let (moto, hits) = echo_server().await;
    let emu = start(enforcing(policies()).forwarding_to(&moto)).await;
    let send = |key: &'static str, table: &'static str| {
        let emu = &emu;
        async move {
            let headers = dynamodb_headers(key);
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let body = format!(r#"{{"TableName": "{table}", "Key": {{"pk": {{"S": "a"}}}}}}"#);
            raw_with_headers(emu, "POST", "/?x=1", &headers, body.as_bytes()).await
        }
    };
    // allowed: moto's answer comes back unchanged, and moto saw the request unchanged
    let (status, headers, body) = send("InstanceRole", "Ledger").await;
    assert_eq!(status, 201, "{body}");
    assert!(headers.contains(&("x-moto".to_string(), "yes".to_string())));
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/?x=1");
    assert_eq!(echo["target"], "DynamoDB_20120810.UpdateItem");
    assert!(echo["body"].as_str().unwrap().contains("\"Ledger\""));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(observed(&emu, "InstanceRole", "dynamodb:UpdateItem", true));

    // another table: refused here, never reaches moto
    let (status, headers, body) = send("InstanceRole", "Other").await;
    assert_eq!(status, 400, "{body}");
    assert!(headers.contains(&(
        "x-amzn-errortype".to_string(),
        "AccessDeniedException".to_string()
    )));
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        error["message"],
        "User: arn:aws:sts::111111111111:assumed-role/InstanceRole/function is not authorized to \
         perform: dynamodb:UpdateItem on resource: arn:aws:dynamodb:us-east-1:111111111111:table/Other \
         because no identity-based policy allows the dynamodb:UpdateItem action"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // the root user is forwarded without evaluation
    let (status, _, _) = send("AKIDLOCALTEST", "Other").await;
    assert_eq!(status, 201);
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // the emulator's own services are still answered here
    sso(&as_principal(&emu, "Reader"))
        .list_instances()
        .send()
        .await
        .unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_unreachable_moto_is_a_clear_bad_gateway() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let emu = start(fast_config().forwarding_to(&url)).await;
    let headers = dynamodb_headers("AKIDLOCALTEST");
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, body) = raw(&emu, "POST", "/", &headers, b"{}").await;
    assert_eq!(status, 502);
    assert!(body.contains("forwarding to"), "{body}");
}
