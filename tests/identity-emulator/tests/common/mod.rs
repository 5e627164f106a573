//! Shared helpers: start the emulator in-process and build real SDK clients that reach it
//! only through endpoint settings (endpoint URL, Region, static credentials).
#![allow(dead_code)]

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use identity_emulator::{Config, Emulator};

pub const MANAGEMENT: &str = "111111111111";
pub const MEMBER: &str = "222222222222";
pub const ROLE: &str = "IdentityOnboardingMemberRole";

/// Short activation delays keep the suite fast.
pub fn fast_config() -> Config {
    Config {
        instance_activation_ms: 150,
        identity_source_activation_ms: 150,
        ..Config::default()
    }
}

pub async fn start(config: Config) -> Emulator {
    identity_emulator::start(config, "127.0.0.1:0")
        .await
        .expect("emulator starts")
}

/// SDK config with static credentials; `max_attempts` SDK attempts with tiny backoff.
pub fn sdk_config_with(
    emulator: &Emulator,
    credentials: Credentials,
    max_attempts: u32,
) -> SdkConfig {
    sdk_config_in(emulator, credentials, max_attempts, "us-east-1")
}

/// As [`sdk_config_with`], with clients configured for `region` (the SigV4 scope Region).
pub fn sdk_config_in(
    emulator: &Emulator,
    credentials: Credentials,
    max_attempts: u32,
    region: &'static str,
) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(emulator.url())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(max_attempts)
                .with_initial_backoff(Duration::from_millis(5))
                .with_max_backoff(Duration::from_millis(20)),
        )
        .build()
}

/// Long-term test credentials: they act in the management account.
pub fn management(emulator: &Emulator) -> SdkConfig {
    sdk_config_with(
        emulator,
        Credentials::new("AKIATESTMANAGEMENT01", "test-secret", None, None, "static"),
        3,
    )
}

/// Long-term management credentials, with clients configured for `region`.
pub fn management_in(emulator: &Emulator, region: &'static str) -> SdkConfig {
    sdk_config_in(
        emulator,
        Credentials::new("AKIATESTMANAGEMENT01", "test-secret", None, None, "static"),
        3,
        region,
    )
}

/// Credentials of `arn:aws:iam::<account>:role/<ROLE>`, through the SDK's STS client.
pub async fn assumed(emulator: &Emulator, account: &str) -> SdkConfig {
    assumed_with_attempts(emulator, account, 3).await
}

pub async fn assumed_with_attempts(
    emulator: &Emulator,
    account: &str,
    max_attempts: u32,
) -> SdkConfig {
    let sts = aws_sdk_sts::Client::new(&management(emulator));
    let out = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/{ROLE}"))
        .role_session_name("tests")
        .send()
        .await
        .expect("assume role");
    let c = out.credentials().expect("credentials");
    sdk_config_with(
        emulator,
        Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "assumed",
        ),
        max_attempts,
    )
}

pub fn sso(config: &SdkConfig) -> aws_sdk_ssoadmin::Client {
    aws_sdk_ssoadmin::Client::new(config)
}

pub fn mpa(config: &SdkConfig) -> aws_sdk_mpa::Client {
    aws_sdk_mpa::Client::new(config)
}

pub fn web(config: &SdkConfig) -> aws_sdk_workspacesweb::Client {
    aws_sdk_workspacesweb::Client::new(config)
}

pub fn sts(config: &SdkConfig) -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::new(config)
}

/// A raw HTTP/1.1 request (for the admin API and malformed input): (status, body).
pub async fn raw(
    emulator: &Emulator,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let (status, _, body) = raw_with_headers(emulator, method, path, headers, body).await;
    (status, body)
}

/// As [`raw`], with the response headers: (status, headers with lower-case names, body).
pub async fn raw_with_headers(
    emulator: &Emulator,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(emulator.addr())
        .await
        .expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    // the server may answer (e.g. 413) and close before a large body is fully written
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// Management credentials whose clients make one attempt (no SDK retries).
pub fn management_once(emulator: &Emulator) -> SdkConfig {
    sdk_config_with(
        emulator,
        Credentials::new("AKIATESTMANAGEMENT01", "test-secret", None, None, "static"),
        1,
    )
}

/// Poll until `f` returns Some, for at most `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
