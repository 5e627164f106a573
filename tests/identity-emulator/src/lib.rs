//! A local, wire-faithful emulator of the AWS APIs the project calls and no public tool
//! implements: IAM Identity Center (SSO Admin) account instances, Multi-party approval
//! identity sources, WorkSpaces Web portals and identity providers, plus the STS calls
//! that make accounts real (`AssumeRole`, `GetCallerIdentity`).
//!
//! Start it in-process with [`start`], or as the `identity-emulator` binary. Point the real
//! AWS SDK clients at [`Emulator::url`]. Faults ([`FaultConfig`]) and request-rate quotas
//! ([`QuotaConfig`]) can be set at start or at run time. With a [`PolicySet`] in the
//! [`Config`] every call is authorized against IAM policies, and requests for other services
//! can be authorized and forwarded to moto. See the README for the config file, IAM and
//! the admin API.

mod admin;
mod config;
mod counters;
mod faults;
mod iam;
mod ids;
mod mpa;
mod protocol;
mod quotas;
mod server;
mod smithy;
mod sso_admin;
mod state;
mod sts;
mod tagging;
mod workspaces_web;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{
    AccountConfig, Config, OrganizationInstance, PortalConfig, SeededInstance, SeededProvider,
};
pub use counters::{CallWindow, Counters, CreateCounts, FaultCounts, UpdateCounts};
pub use faults::{FaultConfig, FaultRule};
pub use iam::{
    Conditions, Effect, MemberRole, PolicyDocument, PolicySet, PrincipalPolicies, Statement,
    MEMBER_ROLE,
};
pub use quotas::{QuotaConfig, QuotaRule, QuotaScope};

use server::Shared;
use smithy::Models;
use state::World;

fn models() -> Result<&'static Models, String> {
    static MODELS: OnceLock<Result<Models, String>> = OnceLock::new();
    MODELS
        .get_or_init(Models::load)
        .as_ref()
        .map_err(Clone::clone)
}

/// A running emulator. Dropping it stops the server (like [`Emulator::shutdown`]).
pub struct Emulator {
    addr: SocketAddr,
    config: Config,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Start the emulator on `listen` (e.g. `127.0.0.1:0` for a free port).
pub async fn start(config: Config, listen: &str) -> std::io::Result<Emulator> {
    config
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let models = models().map_err(std::io::Error::other)?;
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let mut world = World::new(config.clone());
    if config.record_observations {
        world.observed = iam::Observed::for_port(addr.port());
    }
    let shared = Arc::new(Shared {
        world: Mutex::new(world),
        models,
        forwarder: config
            .forward_url
            .as_deref()
            .map(iam::forward::Forwarder::new),
    });
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(server::serve(listener, shared.clone(), rx));
    Ok(Emulator {
        addr,
        config,
        shared,
        shutdown: tx,
        task: Mutex::new(Some(task)),
    })
}

impl Emulator {
    /// `http://127.0.0.1:PORT`, the endpoint URL for every service.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configuration it started with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Calls per operation (and when the first and last arrived), creates (new vs
    /// existing), updates, injected faults and calls throttled by quotas.
    pub fn counters(&self) -> Counters {
        self.shared.world().counters.clone()
    }

    /// When each late role's clock started (the first `AssumeRole` into its account, by
    /// anyone), epoch milliseconds.
    pub fn role_clocks(&self) -> std::collections::HashMap<String, u64> {
        let now = std::time::SystemTime::now();
        self.shared
            .world()
            .role_clocks
            .iter()
            .map(|(account, started)| {
                let at = now.checked_sub(started.elapsed()).unwrap_or(now);
                let ms = at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                (account.clone(), ms)
            })
            .collect()
    }

    /// Resources per account (as `GET /_emulator/state`).
    pub fn state(&self) -> serde_json::Value {
        self.shared.world().dump()
    }

    /// The distinct `(principal, action, allowed)` triples IAM evaluated, in the order first
    /// seen (dependent actions included; the member role is `"member_role"`). Kept across
    /// `reset`.
    pub fn observed(&self) -> Vec<(String, String, bool)> {
        self.shared.world().observed.list()
    }

    /// Replace the fault configuration (and restart its RNG from `faults.seed`).
    pub fn set_faults(&self, faults: FaultConfig) {
        self.shared.world().faults = faults::FaultState::new(faults);
    }

    /// Replace the request-rate quotas (`None`: none), with full buckets. Not validated
    /// here: [`QuotaConfig::validate`] says what `POST /_emulator/quotas` would refuse.
    /// `reset` goes back to the configured quotas ([`Config::quotas`]).
    pub fn set_quotas(&self, quotas: Option<QuotaConfig>) {
        self.shared.world().quotas = quotas::QuotaState::new(quotas);
    }

    /// The request-rate quotas in force (as `GET /_emulator/quotas`).
    pub fn quotas(&self) -> Option<QuotaConfig> {
        self.shared.world().quotas.config().cloned()
    }

    /// The policies it started with, less each `(principal, action)` of `denied` (none: as
    /// started): a deployment whose role was edited, from the next call on. Once any action
    /// is taken out, no observation of this emulator reaches `IAM_OBSERVED_DIR` again (the
    /// least-privilege check reads the shipped policies' observations only); they are still
    /// kept for [`Emulator::observed`].
    pub fn deny(&self, denied: &[(&str, &str)]) {
        let policies = self.config.iam.as_ref().map(|shipped| {
            denied
                .iter()
                .fold(shipped.clone(), |set, (principal, action)| {
                    set.without_action(principal, action)
                })
        });
        let mut world = self.shared.world();
        world.config.iam = policies;
        if !denied.is_empty() {
            world.observed.stop_writing();
        }
    }

    /// Close `account_id` (AWS: `SUSPENDED`): from now on every `AssumeRole` into it is
    /// refused with `AccessDenied`. Credentials issued earlier keep working (the emulator
    /// does not model what a suspended account answers to them).
    pub fn close_account(&self, account_id: &str) {
        self.shared.world().closed.insert(account_id.to_string());
    }

    /// Reopen a closed account (AWS allows it within 90 days): its roles can be assumed again.
    pub fn reopen_account(&self, account_id: &str) {
        self.shared.world().closed.remove(account_id);
    }

    /// Back to the configured organization: resources, tokens, counters, faults, quotas
    /// (the configured ones, buckets full), closed accounts (the configured ones) and the
    /// clocks of late roles. Credentials issued by `AssumeRole` stay valid, and seeded
    /// resources keep their ARNs.
    pub fn reset(&self) {
        self.shared.world().reset();
    }

    /// Forget every remembered ClientToken of every service (as AWS may after a retention
    /// window it does not document). Resources stay: a create repeated with an old token is
    /// then a brand-new request.
    pub fn forget_tokens(&self) {
        self.shared.world().forget_tokens();
    }

    /// Stop accepting connections and close open ones gracefully.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Wait until the server has stopped (after [`Emulator::shutdown`]).
    pub async fn stopped(&self) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}
