//! AWS configuration and cross-account access.
//!
//! Every client derives from one `SdkConfig`, so the standard `AWS_ENDPOINT_URL_<SERVICE>`
//! variables (or a config's service settings, as the tests use) point all of them at local
//! stand-ins without code changes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;

use crate::error::StepError;

/// Assumed credentials are reused until this close to their expiry.
const CREDENTIALS_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Bounded timeouts: an unreachable endpoint is a retryable error in seconds, not a hung
/// invocation.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(25))
        .build()
}

/// The SDK retries of every client the functions make: standard mode, 3 attempts. A
/// throttled call is sent again after the SDK's jittered exponential backoff (up to 1 s,
/// then up to 2 s), so a brief burst of throttling costs about that backoff inside the same
/// invocation. A longer burst fails the step retryably with the service's throttling error,
/// and the engine brings its delivery back after its own jittered delay (1-2 s the first
/// time, growing).
///
/// Not adaptive: its client-side rate limiter, shared by every client of a service in the
/// execution environment, held a retry after a throttled answer for 8-20 s (its fill rate
/// falls to 0.5 token/s and a throttled retry costs 10 tokens), so two throttled answers in
/// a row ran into the 25 s operation timeout, and the record waited for the queue's
/// visibility timeout. Capping that hold with a 2 s maximum backoff recovers inside the
/// invocation, but paced a backfill at binding quotas to half their rate. Figures:
/// tests/bench/README.md, "Throttling recovery".
pub fn retries() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(3)
}

/// The function's configuration from its environment (credentials, Region, endpoints).
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts())
        .retry_config(retries())
        .load()
        .await
}

/// A Multi-party approval client in `region` (MPA exists only in us-east-1), whatever
/// Region the function runs in.
pub fn mpa_client(config: &SdkConfig, region: &str) -> aws_sdk_mpa::Client {
    aws_sdk_mpa::Client::from_conf(
        aws_sdk_mpa::config::Builder::from(config)
            .region(Region::new(region.to_string()))
            .build(),
    )
}

/// Acts in member accounts by assuming a role of a fixed name there. Credentials are cached
/// per account for the life of the execution environment.
pub struct MemberAccess {
    base: SdkConfig,
    sts: aws_sdk_sts::Client,
    role_name: String,
    partition: String,
    cache: Mutex<HashMap<String, Credentials>>,
}

impl MemberAccess {
    /// `partition` is the function's own (`aws`, `aws-cn`, `aws-us-gov`): member accounts
    /// are in the same partition as the organization.
    pub fn new(
        base: &SdkConfig,
        role_name: impl Into<String>,
        partition: impl Into<String>,
    ) -> Self {
        Self {
            base: base.clone(),
            sts: aws_sdk_sts::Client::new(base),
            role_name: role_name.into(),
            partition: partition.into(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn role_arn(&self, account_id: &str) -> String {
        format!(
            "arn:{}:iam::{account_id}:role/{}",
            self.partition, self.role_name
        )
    }

    /// A config acting in `account_id` (in `region`, or the function's own).
    pub async fn config_for(
        &self,
        account_id: &str,
        region: Option<&str>,
    ) -> Result<SdkConfig, StepError> {
        let credentials = match self.cached(account_id) {
            Some(credentials) => credentials,
            None => self.assume(account_id).await?,
        };
        let mut builder = self
            .base
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(credentials));
        if let Some(region) = region {
            builder = builder.region(Region::new(region.to_string()));
        }
        Ok(builder.build())
    }

    fn cached(&self, account_id: &str) -> Option<Credentials> {
        let cache = self.cache.lock().ok()?;
        let credentials = cache.get(account_id)?;
        let fresh = credentials
            .expiry()
            .is_some_and(|expiry| expiry > SystemTime::now() + CREDENTIALS_REFRESH_MARGIN);
        fresh.then(|| credentials.clone())
    }

    async fn assume(&self, account_id: &str) -> Result<Credentials, StepError> {
        let role_arn = self.role_arn(account_id);
        let out = self
            .sts
            .assume_role()
            .role_arn(&role_arn)
            .role_session_name(format!("identity-onboarding-{account_id}"))
            .send()
            .await
            .map_err(|e| {
                let e = StepError::from_sdk(&format!("sts AssumeRole {role_arn}"), e);
                // A new account gets our role minutes after its event (a StackSet or
                // Customizations for Control Tower deploys it): not there *yet*.
                if crate::error::is_access_denied(e.code()) {
                    StepError::not_yet(
                        crate::error::code::MEMBER_ROLE_UNAVAILABLE,
                        format!(
                            "{}; check that the role exists in account {account_id} (the \
                             StackSet or customization that deploys it reached the account) \
                             and that its trust policy allows this function's role",
                            e.reason().message
                        ),
                    )
                } else {
                    e
                }
            })?;
        let c = out.credentials().ok_or_else(|| {
            StepError::retryable(
                "NoCredentials",
                format!("sts AssumeRole {role_arn} returned no credentials"),
            )
        })?;
        let expiry = SystemTime::try_from(*c.expiration()).ok();
        let credentials = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expiry,
            "identity-onboarding-assume-role",
        );
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(account_id.to_string(), credentials.clone());
        }
        Ok(credentials)
    }
}
