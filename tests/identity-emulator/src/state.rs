//! The emulated world: resources per account, the history of their states, ClientToken
//! records, STS sessions, counters, faults and quotas. One `World` lives under a mutex;
//! operations run on it synchronously.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::counters::Counters;
use crate::faults::FaultState;
use crate::iam::{self, Identity, Observed};
use crate::ids;
use crate::quotas::QuotaState;

/// Who is calling, resolved from the SigV4 access key id.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub account: String,
    pub arn: String,
    pub user_id: String,
    /// Region from the SigV4 credential scope (the config's Region when absent).
    pub region: String,
    /// Whose policies IAM evaluates for the caller's calls.
    pub identity: Identity,
}

/// An STS session issued by `AssumeRole`.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// Assumed by an evaluated principal (a function role): the session is evaluated too.
    /// The root user's sessions are not.
    pub evaluated: bool,
    /// `aws`, `aws-cn`, `aws-us-gov`, ...: the partition of the assumed role's ARN.
    pub partition: String,
    pub account: String,
    pub role_name: String,
    pub session_name: String,
    pub role_id: String,
}

pub(crate) struct Instance {
    pub arn: String,
    pub identity_store_id: String,
    pub owner: String,
    pub name: Option<String>,
    pub created: SystemTime,
    pub ready_at: Instant,
    pub organization: bool,
    pub failure: Option<String>,
    /// A seeded instance's fixed `(Status, StatusReason)`; it never changes.
    pub fixed_status: Option<(String, Option<String>)>,
    pub tags: Tags,
    /// `EncryptionConfigurationDetails` once `UpdateInstance` set an encryption configuration.
    pub encryption: Option<Value>,
}

/// Tags of a resource, by key.
pub(crate) type Tags = BTreeMap<String, String>;

impl Instance {
    /// Status now, and the reason of a failure.
    pub(crate) fn status(&self) -> (&str, Option<&str>) {
        if self.organization {
            ("ACTIVE", None)
        } else if let Some((status, reason)) = &self.fixed_status {
            (status, reason.as_deref())
        } else if Instant::now() < self.ready_at {
            ("CREATE_IN_PROGRESS", None)
        } else if let Some(reason) = &self.failure {
            ("CREATE_FAILED", Some(reason))
        } else {
            ("ACTIVE", None)
        }
    }
}

pub(crate) struct IdentitySource {
    pub arn: String,
    pub owner: String,
    pub instance_arn: String,
    pub region: String,
    pub identity_store_id: Option<String>,
    pub created: SystemTime,
    pub ready_at: Instant,
    /// `(StatusCode, StatusMessage)` the source ends in instead of `ACTIVE`.
    pub failure: Option<(&'static str, String)>,
}

impl IdentitySource {
    pub(crate) fn status(&self) -> (&'static str, Option<&(&'static str, String)>) {
        if Instant::now() < self.ready_at {
            ("CREATING", None)
        } else if let Some(f) = &self.failure {
            ("ERROR", Some(f))
        } else {
            ("ACTIVE", None)
        }
    }
}

pub(crate) struct Portal {
    pub arn: String,
    pub id: String,
    pub owner: String,
    pub display_name: Option<String>,
    pub endpoint: String,
    pub authentication_type: String,
    pub created: SystemTime,
    pub tags: Tags,
}

/// `details` hold secrets: this type has no `Debug` and details never leave except to
/// the owner through `GetIdentityProvider`.
pub(crate) struct IdentityProvider {
    pub arn: String,
    pub portal_arn: String,
    pub owner: String,
    pub name: String,
    pub provider_type: String,
    pub details: serde_json::Map<String, Value>,
    /// From the config (existed before the test started).
    pub seeded: bool,
    /// `@sensitive` in the WorkSpaces Web model: shown by key only outside `ListTagsForResource`.
    pub tags: Tags,
}

/// What a ClientToken was first used for.
pub(crate) struct TokenRecord {
    pub parameters: Value,
    pub response: Value,
}

/// Ids of seeded resources, generated once at start and kept across resets so a test can
/// read them from the state before and after a reset.
#[derive(Default)]
pub(crate) struct SeedIds {
    /// account -> (instance ARN, identity store id)
    instances: HashMap<String, (String, String)>,
    /// (portal ARN, provider name) -> provider ARN
    providers: HashMap<(String, String), String>,
}

pub(crate) struct World {
    pub config: Config,
    /// When the emulator started (kept across resets).
    pub started: SystemTime,
    seed_ids: SeedIds,
    /// account -> first `AssumeRole` into it (for `role_appears_after_ms`)
    pub role_clocks: HashMap<String, Instant>,
    /// Closed accounts (configured `closed`, or closed at run time; `reset` goes back to
    /// the configured ones): their roles refuse `AssumeRole`.
    pub closed: BTreeSet<String>,
    /// account -> how many of its created instances were made to fail (`instance_failures`)
    pub failed_creations: HashMap<String, u32>,
    pub instances: Vec<Instance>,
    pub identity_sources: Vec<IdentitySource>,
    pub portals: Vec<Portal>,
    pub identity_providers: Vec<IdentityProvider>,
    /// (operation, account, token) -> first use
    pub tokens: HashMap<(String, String, String), TokenRecord>,
    /// access key id -> session (kept across resets: SDK clients cache credentials)
    pub sessions: HashMap<String, Session>,
    /// What IAM evaluated (kept across resets, like sessions).
    pub observed: Observed,
    pub counters: Counters,
    pub faults: FaultState,
    /// Request-rate quotas in force and their buckets (from the config; `reset` goes back
    /// to it with full buckets).
    pub quotas: QuotaState,
    /// resource ARN -> its states, oldest first (kept after the resource is deleted)
    pub history: BTreeMap<String, Vec<Value>>,
    /// The SDK's `amz-sdk-invocation-id` of the call being executed: the same for every
    /// attempt of one SDK operation call, so the history tells a retried attempt of one call
    /// (a lost response) from another call.
    pub invocation: Option<String>,
    /// Salt of the fingerprints of secret-bearing states (never shown).
    fingerprint_salt: [u8; 16],
}

/// The outcome of checking a ClientToken before a create.
pub(crate) enum TokenCheck {
    /// No token, or a token never seen: create.
    Fresh,
    /// Same token, same parameters: answer with the original response.
    Replay(Value),
    /// Same token, different parameters.
    Mismatch,
}

impl World {
    pub(crate) fn new(config: Config) -> World {
        World::starting(config, SystemTime::now(), SeedIds::default())
    }

    fn starting(config: Config, started: SystemTime, seed_ids: SeedIds) -> World {
        let mut world = World {
            started,
            seed_ids,
            role_clocks: HashMap::new(),
            closed: config
                .accounts
                .iter()
                .filter(|a| a.closed)
                .map(|a| a.account_id.clone())
                .collect(),
            failed_creations: HashMap::new(),
            instances: Vec::new(),
            identity_sources: Vec::new(),
            portals: Vec::new(),
            identity_providers: Vec::new(),
            tokens: HashMap::new(),
            sessions: HashMap::new(),
            observed: Observed::default(),
            counters: Counters::default(),
            faults: FaultState::default(),
            quotas: QuotaState::new(config.quotas.clone()),
            history: BTreeMap::new(),
            invocation: None,
            fingerprint_salt: *uuid::Uuid::new_v4().as_bytes(),
            config,
        };
        world.seed();
        world
    }

    fn seed(&mut self) {
        // older than anything a test creates
        let seeded_at = self
            .started
            .checked_sub(Duration::from_secs(86_400))
            .unwrap_or(self.started);
        let org = &self.config.organization_instance;
        self.instances.push(Instance {
            arn: org.instance_arn.clone(),
            identity_store_id: org.identity_store_id.clone(),
            owner: self.config.management_account_id.clone(),
            name: Some(org.name.clone()).filter(|n| !n.is_empty()),
            created: seeded_at,
            ready_at: Instant::now(),
            organization: true,
            failure: None,
            fixed_status: None,
            tags: Tags::new(),
            encryption: None,
        });
        for account in &self.config.accounts {
            if let Some(seeded) = &account.instance {
                let (arn, store) = self
                    .seed_ids
                    .instances
                    .entry(account.account_id.clone())
                    .or_insert_with(|| (ids::instance_arn(), ids::identity_store_id()))
                    .clone();
                self.instances.push(Instance {
                    arn,
                    identity_store_id: store,
                    owner: account.account_id.clone(),
                    name: seeded.name.clone(),
                    created: seeded_at,
                    ready_at: Instant::now(),
                    organization: false,
                    failure: None,
                    fixed_status: Some((seeded.status.clone(), seeded.status_reason.clone())),
                    tags: Tags::new(),
                    encryption: None,
                });
            }
            for p in &account.portals {
                let (region, _, id) = ids::parse_portal_arn(&p.portal_arn).unwrap_or_default();
                for provider in &p.identity_providers {
                    let arn = self
                        .seed_ids
                        .providers
                        .entry((p.portal_arn.clone(), provider.name.clone()))
                        .or_insert_with(|| {
                            ids::identity_provider_arn(&region, &account.account_id, &id)
                        })
                        .clone();
                    self.identity_providers.push(IdentityProvider {
                        arn,
                        portal_arn: p.portal_arn.clone(),
                        owner: account.account_id.clone(),
                        name: provider.name.clone(),
                        provider_type: provider.provider_type.clone(),
                        details: provider
                            .details
                            .iter()
                            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                            .collect(),
                        seeded: true,
                        tags: Tags::new(),
                    });
                }
                self.portals.push(Portal {
                    endpoint: format!("{id}.workspaces-web.com"),
                    id,
                    arn: p.portal_arn.clone(),
                    owner: account.account_id.clone(),
                    display_name: p.display_name.clone(),
                    authentication_type: p.authentication_type.clone(),
                    created: seeded_at,
                    tags: Tags::new(),
                });
            }
        }
        let seeded: Vec<(String, Value)> = self
            .instances
            .iter()
            .map(|i| (i.arn.clone(), instance_state(i)))
            .chain(
                self.portals
                    .iter()
                    .map(|p| (p.arn.clone(), self.portal_state(p))),
            )
            .chain(
                self.identity_providers
                    .iter()
                    .map(|i| (i.arn.clone(), self.provider_state(i))),
            )
            .collect();
        for (arn, state) in seeded {
            self.record(&arn, "seeded", state);
        }
    }

    /// Append the state a resource is in after `operation` to its history.
    pub(crate) fn record(&mut self, arn: &str, operation: &str, state: Value) {
        let invocation = self.invocation.clone();
        let entries = self.history.entry(arn.to_string()).or_default();
        let mut entry = json!({
            "version": entries.len() + 1,
            "operation": operation,
            "at": ids::iso8601(SystemTime::now()),
        });
        if let Some(id) = invocation {
            entry["invocation"] = json!(id);
        }
        if let (Some(e), Value::Object(fields)) = (entry.as_object_mut(), state) {
            e.extend(fields);
        }
        entries.push(entry);
    }

    /// A salted digest of values that must not be shown (details, WorkSpaces Web tags):
    /// equal states have equal fingerprints within one emulator run.
    fn fingerprint(&self, parts: &[&Value]) -> String {
        let mut hash = Sha256::new();
        hash.update(self.fingerprint_salt);
        for part in parts {
            hash.update(canonical(part).to_string().as_bytes());
            hash.update([0]);
        }
        hex::encode(&hash.finalize()[..8])
    }

    /// What the history keeps of a portal: tag keys and a fingerprint (tags are sensitive).
    pub(crate) fn portal_state(&self, p: &Portal) -> Value {
        let tags = json!(p.tags);
        json!({
            "tag_keys": p.tags.keys().collect::<Vec<_>>(),
            "fingerprint": self.fingerprint(&[&tags]),
        })
    }

    /// What the history keeps of an identity provider: name, type, detail and tag keys, and
    /// a fingerprint of everything (details and tags hold secrets).
    pub(crate) fn provider_state(&self, i: &IdentityProvider) -> Value {
        let details = Value::Object(i.details.clone());
        let tags = json!(i.tags);
        let name = json!(i.name);
        let kind = json!(i.provider_type);
        json!({
            "identity_provider_name": i.name,
            "identity_provider_type": i.provider_type,
            "detail_keys": i.details.keys().collect::<Vec<_>>(),
            "tag_keys": i.tags.keys().collect::<Vec<_>>(),
            "fingerprint": self.fingerprint(&[&name, &kind, &details, &tags]),
        })
    }

    /// Back to the configured organization: resources, tokens, counters, faults and the
    /// clocks of late roles. STS sessions survive (clients keep using their cached
    /// credentials), and so do the ids of seeded resources.
    pub(crate) fn reset(&mut self) {
        let sessions = std::mem::take(&mut self.sessions);
        let observed = std::mem::take(&mut self.observed);
        let seed_ids = std::mem::take(&mut self.seed_ids);
        *self = World::starting(self.config.clone(), self.started, seed_ids);
        self.sessions = sessions;
        self.observed = observed;
    }

    /// Forget every remembered ClientToken (as AWS may after its undocumented retention
    /// window). Resources stay.
    pub(crate) fn forget_tokens(&mut self) {
        self.tokens.clear();
    }

    pub(crate) fn caller(&self, access_key: Option<&str>, region: Option<&str>) -> Caller {
        let region = region
            .filter(|r| !r.is_empty())
            .unwrap_or(&self.config.region)
            .to_string();
        let management = &self.config.management_account_id;
        let iam = self.config.iam.as_ref();
        match access_key.and_then(|k| self.sessions.get(k)) {
            Some(s) => {
                // only the member role's sessions of evaluated callers are evaluated (the
                // others are the root user's)
                let member = s.evaluated
                    && iam
                        .and_then(|set| set.member_role.as_ref())
                        .is_some_and(|m| m.name == s.role_name && s.account != *management);
                Caller {
                    account: s.account.clone(),
                    arn: format!(
                        "arn:{}:sts::{}:assumed-role/{}/{}",
                        s.partition, s.account, s.role_name, s.session_name
                    ),
                    user_id: format!("{}:{}", s.role_id, s.session_name),
                    region,
                    identity: if member {
                        Identity::Member {
                            account: s.account.clone(),
                            partition: s.partition.clone(),
                        }
                    } else {
                        Identity::Unevaluated
                    },
                }
            }
            None => match (iam, access_key) {
                // an access key named after a principal acts as that role
                (Some(set), Some(key)) if set.principals.contains_key(key) => Caller {
                    arn: iam::function_caller_arn(set, key, management),
                    user_id: format!("AROA{}:function", key.to_ascii_uppercase()),
                    account: management.clone(),
                    region,
                    identity: Identity::Function(key.to_string()),
                },
                _ => Caller {
                    arn: format!("arn:aws:iam::{management}:root"),
                    user_id: management.clone(),
                    account: management.clone(),
                    region,
                    identity: Identity::Unevaluated,
                },
            },
        }
    }

    pub(crate) fn activation(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    /// Look up a ClientToken of `operation` in `account`. An absent or empty token is fresh.
    pub(crate) fn check_token(
        &self,
        operation: &str,
        account: &str,
        token: Option<&str>,
        parameters: &Value,
    ) -> TokenCheck {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return TokenCheck::Fresh;
        };
        let key = (
            operation.to_string(),
            account.to_string(),
            token.to_string(),
        );
        match self.tokens.get(&key) {
            None => TokenCheck::Fresh,
            Some(r) if r.parameters == *parameters => TokenCheck::Replay(r.response.clone()),
            Some(_) => TokenCheck::Mismatch,
        }
    }

    pub(crate) fn remember_token(
        &mut self,
        operation: &str,
        account: &str,
        token: Option<&str>,
        parameters: Value,
        response: &Value,
    ) {
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            self.tokens.insert(
                (
                    operation.to_string(),
                    account.to_string(),
                    token.to_string(),
                ),
                TokenRecord {
                    parameters,
                    response: response.clone(),
                },
            );
        }
    }

    fn history_of(&self, arn: &str) -> Value {
        json!(self.history.get(arn).cloned().unwrap_or_default())
    }

    /// Resources per account (identity provider details reduced to their keys), each with the
    /// history of its states; `history` also maps every ARN ever seen to its states.
    pub(crate) fn dump(&self) -> Value {
        let mut accounts: BTreeMap<String, Value> = BTreeMap::new();
        let mut push = |owner: &str, kind: &str, item: Value| {
            let acc = accounts.entry(owner.to_string()).or_insert_with(|| {
                json!({"instances": [], "identity_sources": [], "portals": [], "identity_providers": []})
            });
            if let Some(list) = acc.get_mut(kind).and_then(Value::as_array_mut) {
                list.push(item);
            }
        };
        for i in &self.instances {
            let (status, reason) = i.status();
            push(
                &i.owner,
                "instances",
                json!({
                    "instance_arn": i.arn, "identity_store_id": i.identity_store_id,
                    "name": i.name, "status": status, "status_reason": reason,
                    "organization": i.organization,
                    "seeded": i.fixed_status.is_some(),
                    "created": ids::iso8601(i.created),
                    "tags": i.tags,
                    "history": self.history_of(&i.arn),
                }),
            );
        }
        for s in &self.identity_sources {
            let (status, failure) = s.status();
            push(
                &s.owner,
                "identity_sources",
                json!({
                    "identity_source_arn": s.arn, "instance_arn": s.instance_arn,
                    "region": s.region, "status": status,
                    "status_code": failure.map(|f| f.0),
                    "created": ids::iso8601(s.created),
                }),
            );
        }
        for p in &self.portals {
            push(
                &p.owner,
                "portals",
                json!({"portal_arn": p.arn, "portal_endpoint": p.endpoint,
                       "created": ids::iso8601(p.created),
                       "tag_keys": p.tags.keys().collect::<Vec<_>>(),
                       "history": self.history_of(&p.arn)}),
            );
        }
        for idp in &self.identity_providers {
            let keys: Vec<&String> = idp.details.keys().collect();
            push(
                &idp.owner,
                "identity_providers",
                json!({
                    "identity_provider_arn": idp.arn, "portal_arn": idp.portal_arn,
                    "identity_provider_name": idp.name,
                    "identity_provider_type": idp.provider_type,
                    "detail_keys": keys,
                    "seeded": idp.seeded,
                    "tag_keys": idp.tags.keys().collect::<Vec<_>>(),
                    "history": self.history_of(&idp.arn),
                }),
            );
        }
        json!({
            "region": self.config.region,
            "management_account_id": self.config.management_account_id,
            "organization_instance_arn": self.config.organization_instance.instance_arn,
            "accounts": accounts,
            "history": self.history,
            "sessions": self.sessions.len(),
        })
    }
}

/// What the history keeps of an account instance: name, tags and encryption.
pub(crate) fn instance_state(i: &Instance) -> Value {
    json!({
        "name": i.name,
        "tags": i.tags,
        "encryption": i.encryption,
    })
}

/// `value` with object keys sorted at every level (a stable input for fingerprints).
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, Value> =
                m.iter().map(|(k, v)| (k, canonical(v))).collect();
            json!(sorted)
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// One page of `items` after the opaque `next_token`, and the token of the next page.
/// Tokens are `p<offset>` (valid for all three services' token patterns).
pub(crate) fn page<'a, T>(
    items: &'a [T],
    next_token: Option<&str>,
    size: usize,
) -> Result<(&'a [T], Option<String>), String> {
    let start = match next_token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => t
            .strip_prefix('p')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| "The pagination token is invalid or expired.".to_string())?,
    };
    let size = size.max(1);
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| format!("p{end}"));
    Ok((&items[start..end], next))
}
