//! What the replay delivers and what each step must come to.
//!
//! N generated onboarding requests (distinct accounts) plus every event in `events/`, the
//! emulator organization they need, and, computed from those two alone, the expected end of
//! every step key ([`expectations`]). The generated requests fall into populations:
//!
//! | population | share | the organization | every step of it must end |
//! |---|---|---|---|
//! | new account | ~57% (own requests, Control Tower, Organizations) | nothing special | READY, made by us (origin created, or adopted after a lost response) |
//! | late role | 8% | the member role appears [`Timing::role_after`] after the first AssumeRole into the account, inside the grace window | READY, made by us; never FAILED |
//! | pre-existing instance | 5% | an ACTIVE account instance from before the run | READY, origin pre-existing, the seeded ARN, no instance made by us |
//! | matching provider | 3% | the portal already has a provider of the requested name, type and non-secret details | READY, origin pre-existing, the seeded ARN |
//! | foreign provider | 5% | the portal has a provider of the requested name whose type or details differ | FAILED `ForeignResourceConflict` naming it, announced once, never Ready, the provider untouched |
//! | role refused | 3% | AssumeRole into the account is always denied | FAILED `MemberRoleUnavailable`, only after the grace window |
//! | instance fails | 2% | CreateInstance ends CREATE_FAILED | FAILED |
//! | unknown portal | 3% | the requested portal does not exist | FAILED (the instance is made) |
//!
//! plus Control Tower / Organizations events that ask for nothing (3%) and invalid events (2%).
//!
//! Drawn before those, ~10% of the accounts are a revisions population: 2-4 own requests with
//! distinct `time`s (each naming the instance differently, some with other tags; on a portal
//! in 60% of them, each with other provider details and maybe another `secretId`) and a
//! Control Tower event for the account (older than every own request, asking for nothing).
//! Each key of it must end READY in the state of its latest revision ([`Revisions`]), never
//! going back to an older revision's state on the way, with at most one update per revision,
//! every applied update announced.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use identity_emulator::{AccountConfig, Config as EmulatorConfig, SeededInstance, SeededProvider};
use onboarding::events::{decode_body, Accept, Decoded, WebIdentityProviderSpec};
use onboarding::ledger::{Origin, Status, StepKey};
use onboarding::revision::Revision;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};

use crate::deliveries::{control_tower, envelope, onboarding_requested, organizations};

/// The secret every OIDC provider of the run names (the `events/` samples use it too).
pub const SECRET_ID: &str = "onboarding/corp-oidc";
/// The secret a revision of a provider may name instead (a rotated client).
pub const ROTATED_SECRET_ID: &str = "onboarding/corp-oidc-rotated";
/// Every secret of the run and the client secret it holds.
pub const SECRETS: [(&str, &str); 2] = [
    (SECRET_ID, "replay-client-secret"),
    (ROTATED_SECRET_ID, "replay-client-secret-rotated"),
];

pub const INSTANCE: &str = "identity-center-instance";
pub const APPROVAL: &str = "approval-identity-source";
pub const WEB: &str = "web-identity-provider";

/// The production defaults (template.yaml) the realistic timing keeps the ratios of.
const PRODUCTION_GRACE: Duration = Duration::from_secs(7200);
const PRODUCTION_RETRY_BASE: Duration = Duration::from_secs(60);
const PRODUCTION_RETRY_MAX: Duration = Duration::from_secs(1800);

/// How the run's clock relates to production's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `make test`: the grace window and its backoff squeezed into seconds.
    Compressed,
    /// `make replay`: production's ratios, one production minute to one second.
    Realistic,
}

/// The grace window, its backoff, when late roles appear and the queues' budgets.
#[derive(Clone, Debug)]
pub struct Timing {
    pub mode: Mode,
    /// `EngineSettings.member_role_grace`.
    pub grace: Duration,
    /// `EngineSettings.retry_base` / `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// A late role appears between these after the first AssumeRole into its account.
    pub role_after: (Duration, Duration),
    /// When a failed record set no delay of its own (and for direct deliveries): the first
    /// redelivery after this, doubled per receive up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Receives on top of those the grace window takes, for ordinary retries (the run's
    /// faults make many more than production sees).
    pub spare_receives: u32,
}

impl Timing {
    /// Grace 20 s, backoff 200 ms doubling to 2 s, late roles after 0.5-3 s. The window is
    /// wide against the roles because the run's own delays are seconds, not the minutes-to-
    /// hours ratio of production: moto answering in over a second on a loaded machine, a
    /// batch waiting for a stalled holder, 2 s leases. With 8 s, late-role steps whose role
    /// had long appeared were failed after the window because no delivery reached them in it.
    pub fn compressed() -> Timing {
        Timing {
            mode: Mode::Compressed,
            grace: Duration::from_secs(20),
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(2),
            role_after: (Duration::from_millis(500), Duration::from_secs(3)),
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(600),
            spare_receives: 8,
        }
    }

    /// Production's window and backoff (7200 s, 60 s, 1800 s) with a minute as a second:
    /// 120 s, 1 s doubling to 30 s; late roles after 1-20 s ("minutes" in production); the
    /// lease (2 s) is production's 120 s at the same scale.
    pub fn realistic() -> Timing {
        let scale = 60;
        Timing {
            mode: Mode::Realistic,
            grace: PRODUCTION_GRACE / scale,
            retry_base: PRODUCTION_RETRY_BASE / scale,
            retry_max: PRODUCTION_RETRY_MAX / scale,
            role_after: (Duration::from_secs(1), Duration::from_secs(20)),
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(3),
            spare_receives: 8,
        }
    }

    /// `REPLAY_TIMING` (`compressed` or `realistic`); unset: realistic when `REPLAY_N` is set
    /// (`make replay` always sets it), compressed otherwise (`make test`).
    pub fn from_env() -> Result<Timing, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        match var("REPLAY_TIMING").as_deref().map(str::trim) {
            Some("compressed") => Ok(Timing::compressed()),
            Some("realistic") => Ok(Timing::realistic()),
            Some(other) => Err(format!(
                "REPLAY_TIMING must be compressed or realistic, got {other:?}"
            )),
            None if var("REPLAY_N").is_some() => Ok(Timing::realistic()),
            None => Ok(Timing::compressed()),
        }
    }

    pub fn name(&self) -> &'static str {
        match self.mode {
            Mode::Compressed => "compressed",
            Mode::Realistic => "realistic",
        }
    }

    /// Receives a never-reachable step takes until the first one past the grace window (the
    /// one that records FAILED), at the shortest jitter (0.8x) of the engine's backoff:
    /// the arithmetic of template.yaml's MaxReceiveCount rule.
    pub fn receives_in_window(&self) -> u32 {
        receives_until(self.grace, |n| {
            backoff(self.retry_base, self.retry_max, n).mul_f64(0.8)
        })
    }

    /// The SQS queues' `maxReceiveCount`.
    pub fn max_receive_count(&self) -> u32 {
        self.receives_in_window() + self.spare_receives
    }

    /// Direct deliveries' retry budget: the grace window at the default backoff, plus spare.
    pub fn direct_max_receive_count(&self) -> u32 {
        receives_until(self.grace, |n| {
            backoff(self.first_backoff, self.max_backoff, n)
        }) + self.spare_receives
    }

    pub fn describe(&self) -> String {
        format!(
            "{} (grace window {}, backoff {} doubling to {} jittered 0.8-1.0x, late roles \
             after {}-{}; maxReceiveCount {} = {} receives to outlast the window + {} spare; \
             direct deliveries {} receives at {}-{})",
            self.name(),
            secs(self.grace),
            secs(self.retry_base),
            secs(self.retry_max),
            secs(self.role_after.0),
            secs(self.role_after.1),
            self.max_receive_count(),
            self.receives_in_window(),
            self.spare_receives,
            self.direct_max_receive_count(),
            secs(self.first_backoff),
            secs(self.max_backoff),
        )
    }
}

/// `min(base * 2^(n-1), max)`.
fn backoff(base: Duration, max: Duration, n: u32) -> Duration {
    base.saturating_mul(1u32 << n.saturating_sub(1).min(30))
        .min(max)
}

/// The receive (counting the first) that comes at or after `window`, receive n+1 coming
/// `delay(n)` after receive n.
fn receives_until(window: Duration, delay: impl Fn(u32) -> Duration) -> u32 {
    let mut at = Duration::ZERO;
    let mut n = 1;
    while at < window && n < 10_000 {
        at += delay(n);
        n += 1;
    }
    n
}

pub fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// One event as the pipeline emitted it (before EventBridge and SQS copy it).
#[derive(Clone, Debug)]
pub struct Original {
    /// Where it comes from, for messages: `generated #17 (own request)`, `events/x.json`.
    pub label: String,
    /// What a queue delivers: the EventBridge event as JSON (or a malformed body).
    pub body: String,
    /// The parsed event, when the body is a JSON event (only those can be replayed or
    /// delivered directly).
    pub event: Option<Value>,
    /// Delivered directly by the rules (the three functions are the targets), not via SQS.
    pub direct: bool,
    /// How many times EventBridge delivers it to each target (1-4).
    pub copies: u32,
    /// One of the requests of the revisions population.
    pub revisions: bool,
}

pub struct Plan {
    pub originals: Vec<Original>,
    pub emulator: EmulatorConfig,
}

fn uuid(rng: &mut StdRng) -> String {
    uuid::Builder::from_random_bytes(rng.gen())
        .into_uuid()
        .to_string()
}

fn portal_arn(account: &str, n: usize) -> String {
    format!("arn:aws:workspaces-web:us-east-1:{account}:portal/0d5e1c8a-3b7f-4e2a-9c6d-{n:012}")
}

fn provider(rng: &mut StdRng, portal: &str, n: usize) -> Value {
    if rng.gen_bool(0.6) {
        json!({
            "portalArn": portal,
            "providerName": "corp-oidc",
            "providerType": "OIDC",
            "details": {
                "client_id": format!("client-{n}"),
                "oidc_issuer": "https://idp.example.com/oauth2/default",
                "authorize_scopes": "openid email",
                "attributes_request_method": "GET"
            },
            "secretId": SECRET_ID,
            "tags": { "Team": "platform" }
        })
    } else {
        json!({
            "portalArn": portal,
            "providerName": "corp-saml",
            "providerType": "SAML",
            "details": { "MetadataURL": format!("https://idp.example.com/saml/{n}/metadata.xml") }
        })
    }
}

/// The provider another team made on the portal under the name `requested` asks for: the
/// same type and non-secret details (`matching`), or a different type or details.
fn seeded_provider(rng: &mut StdRng, requested: &Value, matching: bool) -> SeededProvider {
    let name = requested["providerName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let kind = requested["providerType"].as_str().unwrap_or_default();
    let mut details: BTreeMap<String, String> = requested["details"]
        .as_object()
        .map(|d| {
            d.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let oidc = |client: &str| {
        BTreeMap::from([
            ("client_id".to_string(), client.to_string()),
            ("client_secret".to_string(), "their-own-secret".to_string()),
            ("attributes_request_method".to_string(), "POST".to_string()),
            (
                "oidc_issuer".to_string(),
                "https://login.other-team.example.com".to_string(),
            ),
            ("authorize_scopes".to_string(), "openid".to_string()),
        ])
    };
    let other_metadata = || {
        BTreeMap::from([(
            "MetadataURL".to_string(),
            "https://idp.other-team.example.com/saml/metadata.xml".to_string(),
        )])
    };
    let (provider_type, details) = match (matching, kind, rng.gen_bool(0.5)) {
        (true, "OIDC", _) => {
            // The secret is never compared (it is not part of the request).
            details.insert("client_secret".into(), "their-own-secret".into());
            ("OIDC", details)
        }
        (true, _, _) => ("SAML", details),
        // Another type under the same name.
        (false, "OIDC", true) => ("SAML", other_metadata()),
        (false, _, true) => ("OIDC", oidc("other-team-client")),
        // The same type, another non-secret detail.
        (false, "OIDC", false) => {
            details.insert("client_id".into(), "other-team-client".into());
            details.insert("client_secret".into(), "their-own-secret".into());
            ("OIDC", details)
        }
        (false, _, false) => ("SAML", other_metadata()),
    };
    SeededProvider {
        name,
        provider_type: provider_type.to_string(),
        details,
    }
}

fn instance_detail(rng: &mut StdRng, i: usize) -> Value {
    let mut instance = json!({ "name": format!("acct-{i}") });
    if rng.gen_bool(0.4) {
        instance["tags"] = json!({ "CostCenter": format!("{}", 1000 + i % 97) });
    }
    instance
}

/// Provider names the revisions population draws: a `#` (the step key holds the name after
/// the portal ARN, which has none), a `/`, and letters beyond ASCII.
const PROVIDER_NAMES: [&str; 4] = ["corp-oidc", "corp#oidc", "team/oidc", "idp-ünïcode-認証"];

/// Instance and provider tag keys a revision may name (several at once).
const TAG_KEYS: [&str; 3] = ["CostCenter", "Stage", "Owner"];

/// Tags naming some of `TAG_KEYS` (at least one), each a value of revision `j` or, for a key
/// a request of the account named before, `null` now and then: "remove this tag".
fn revision_tags(rng: &mut StdRng, j: usize, named: &mut Vec<&'static str>) -> Value {
    let mut tags = serde_json::Map::new();
    for key in TAG_KEYS {
        if !rng.gen_bool(0.5) {
            continue;
        }
        let value = if named.contains(&key) && rng.gen_bool(0.3) {
            Value::Null
        } else {
            json!(format!("{key}-r{j}"))
        };
        tags.insert(key.to_string(), value);
        if !named.contains(&key) {
            named.push(key);
        }
    }
    if tags.is_empty() {
        tags.insert("CostCenter".into(), json!(format!("{}", 2000 + j)));
        if !named.contains(&"CostCenter") {
            named.push("CostCenter");
        }
    }
    Value::Object(tags)
}

/// The revisions population's events for account `i`: 2-5 own requests at distinct times,
/// each naming what it names independently of the others (the instance's name or not, some
/// tags or not, several keys at once, a tag removed with `null`; the provider or not, its
/// tags or not; some name nothing at all), on a portal in 60% of the accounts (the provider
/// named `corp-oidc`, `corp#oidc`, `team/oidc` or with letters beyond ASCII); Control Tower
/// events older and newer than the own requests (they name nothing); and operators' CLI
/// replays of older requests (the same event, a new id, its own old time). The expected
/// state is the per-field merge of every valid request ([`Revisions::wanted`]).
fn revision_requests(
    rng: &mut StdRng,
    i: usize,
    account: &str,
    portal: &str,
) -> (Vec<Original>, Option<AccountConfig>) {
    let n = rng.gen_range(2..=5);
    let with_provider = rng.gen_bool(0.6);
    let provider_name = PROVIDER_NAMES[rng.gen_range(0..PROVIDER_NAMES.len())];
    let mut minutes: Vec<u32> = (0..60).collect();
    minutes.shuffle(rng);
    let mut minutes: Vec<u32> = minutes.into_iter().take(n + 1).collect();
    minutes.sort_unstable();
    // The last minute drawn is a Control Tower event's, newer than some own requests.
    let ct_minute = minutes.remove(rng.gen_range(1..minutes.len()));
    let mut out = Vec::new();
    let mut push = |rng: &mut StdRng, label: String, event: Value| {
        out.push(Original {
            label,
            body: event.to_string(),
            event: Some(event),
            direct: rng.gen_bool(0.15),
            copies: rng.gen_range(1..=4),
            revisions: true,
        });
    };
    let (mut instance_tags, mut provider_tags) = (Vec::new(), Vec::new());
    let mut own = Vec::new();
    for (j, minute) in minutes.iter().enumerate() {
        let mut detail = json!({});
        // One in six names nothing at all.
        if !rng.gen_bool(1.0 / 6.0) {
            let mut instance = serde_json::Map::new();
            if rng.gen_bool(0.6) {
                instance.insert("name".into(), json!(format!("acct-{i}-r{j}")));
            }
            if rng.gen_bool(0.6) {
                instance.insert("tags".into(), revision_tags(rng, j, &mut instance_tags));
            }
            if !instance.is_empty() {
                detail["identityCenterInstance"] = Value::Object(instance);
            }
            if with_provider && rng.gen_bool(0.7) {
                let mut p = json!({
                    "portalArn": portal,
                    "providerName": provider_name,
                    "providerType": "OIDC",
                    "details": {
                        "client_id": format!("client-{i}-r{}", rng.gen_range(0..2)),
                        "oidc_issuer": format!("https://idp-r{j}.example.com/oauth2/{i}"),
                        "authorize_scopes": if rng.gen_bool(0.5) { "openid email" } else { "openid" },
                        "attributes_request_method": if j % 2 == 0 { "GET" } else { "POST" }
                    },
                    "secretId": SECRETS[rng.gen_range(0..SECRETS.len())].0,
                });
                if rng.gen_bool(0.5) {
                    p["tags"] = revision_tags(rng, j, &mut provider_tags);
                }
                detail["webIdentityProvider"] = p;
            }
        }
        let mut event = onboarding_requested(&uuid(rng), account, detail);
        event["time"] = json!(format!("2026-11-30T10:{minute:02}:00Z"));
        own.push(event.clone());
        push(
            rng,
            format!(
                "generated #{i} (revisions, {} of {n}, account {account})",
                j + 1
            ),
            event,
        );
    }
    // Control Tower: one at the envelope's default time, older than every own request, and
    // one among them.
    let ct = control_tower(&uuid(rng), "CreateManagedAccount", account, "SUCCEEDED");
    push(
        rng,
        format!("generated #{i} (revisions, Control Tower, older, account {account})"),
        ct,
    );
    let mut ct = control_tower(&uuid(rng), "UpdateManagedAccount", account, "SUCCEEDED");
    ct["time"] = json!(format!("2026-11-30T10:{ct_minute:02}:00Z"));
    push(
        rng,
        format!(
            "generated #{i} (revisions, Control Tower at 10:{ct_minute:02}, account {account})"
        ),
        ct,
    );
    // An operator replays an older request with `onboarding replay`: the same event, a new
    // id, its own time (no replay-name: it is published, not replayed from an archive).
    if rng.gen_bool(0.5) {
        let j = rng.gen_range(0..own.len().saturating_sub(1).max(1));
        let mut again = own[j].clone();
        again["id"] = json!(uuid(rng));
        push(
            rng,
            format!(
                "generated #{i} (revisions, CLI replay of {} of {n}, account {account})",
                j + 1
            ),
            again,
        );
    }
    let org = with_provider.then(|| AccountConfig::new(account).with_portal(portal));
    (out, org)
}

/// The kinds of departure the closure population draws from, as Organizations reports them.
const DEPARTURE_KINDS: [&str; 4] = [
    "CloseAccountResult",
    "RemoveAccountFromOrganization",
    "LeaveOrganization",
    "AccountDepartedOrganization",
];

/// An Organizations event that ends `account`'s membership, at `time`, shaped as CloudTrail
/// records it (the `events/` samples; `shared/src/events/departure.rs`).
pub fn departure(event_id: &str, account: &str, kind: &str, time: &str) -> Value {
    let mut detail = json!({
        "eventVersion": "1.08",
        "eventSource": "organizations.amazonaws.com",
        "eventName": kind,
        "awsRegion": "us-east-1",
        "eventTime": time,
        "eventType": "AwsServiceEvent",
        "userIdentity": { "accountId": "111111111111", "invokedBy": "organizations.amazonaws.com" },
        "requestParameters": null,
        "responseElements": null,
        "managementEvent": true,
        "recipientAccountId": "111111111111",
    });
    let detail_type = match kind {
        "CloseAccountResult" => {
            detail["serviceEventDetails"] = json!({ "closeAccountStatus": {
                "accountId": account,
                "state": "SUCCEEDED",
                "requestedTimestamp": time,
                "completedTimestamp": time,
            }});
            "AWS Service Event via CloudTrail"
        }
        "RemoveAccountFromOrganization" => {
            detail["eventType"] = json!("AwsApiCall");
            detail["requestParameters"] = json!({ "accountId": account });
            "AWS API Call via CloudTrail"
        }
        "LeaveOrganization" => {
            detail["eventType"] = json!("AwsApiCall");
            detail["userIdentity"] = json!({ "type": "AssumedRole", "accountId": account });
            detail["recipientAccountId"] = json!(account);
            "AWS API Call via CloudTrail"
        }
        _ => {
            detail["serviceEventDetails"] = json!({
                "accountId": account,
                "departedMethod": "Removed",
                "departedTime": time,
            });
            "AWS Service Event via CloudTrail"
        }
    };
    let mut event = envelope(event_id, "aws.organizations", detail_type, detail);
    event["time"] = json!(time);
    event
}

/// The closure population's events for account `i`: an own request (the instance, and a
/// provider on a portal in half of the accounts), the account's departure (closed, removed,
/// left or departed; newer than the request, delivered with it in any order, so that it
/// lands before, during or after the steps are made), and for 40% a newer onboarding
/// request after the departure (a reopened account onboarded again).
fn closure_requests(
    rng: &mut StdRng,
    i: usize,
    account: &str,
    portal: &str,
) -> (Vec<Original>, Option<AccountConfig>) {
    let mut detail = json!({ "identityCenterInstance": instance_detail(rng, i) });
    let with_provider = rng.gen_bool(0.5);
    if with_provider {
        detail["webIdentityProvider"] = provider(rng, portal, i);
    }
    let kind = DEPARTURE_KINDS[rng.gen_range(0..DEPARTURE_KINDS.len())];
    let minute = rng.gen_range(0..60);
    let mut out = Vec::new();
    let mut push = |rng: &mut StdRng, label: String, event: Value| {
        out.push(Original {
            label,
            body: event.to_string(),
            event: Some(event),
            direct: rng.gen_bool(0.15),
            copies: rng.gen_range(1..=4),
            revisions: false,
        });
    };
    let request = onboarding_requested(&uuid(rng), account, detail.clone());
    push(
        rng,
        format!("generated #{i} (closure, onboarding, account {account})"),
        request,
    );
    let gone = departure(
        &uuid(rng),
        account,
        kind,
        &format!("2026-11-25T12:{minute:02}:00Z"),
    );
    push(
        rng,
        format!("generated #{i} (closure, {kind}, account {account})"),
        gone,
    );
    if rng.gen_bool(0.4) {
        let mut again = onboarding_requested(&uuid(rng), account, detail);
        again["time"] = json!(format!("2026-11-28T10:{minute:02}:00Z"));
        push(
            rng,
            format!("generated #{i} (closure, reopened and onboarded again, account {account})"),
            again,
        );
    }
    let org = with_provider.then(|| AccountConfig::new(account).with_portal(portal));
    (out, org)
}

/// The generated requests, `events/`, copies and delivery modes, all from `rng`.
pub fn generate(
    n: usize,
    rng: &mut StdRng,
    events_dir: &Path,
    timing: &Timing,
) -> Result<Plan, String> {
    let mut emulator = EmulatorConfig {
        instance_activation_ms: 150,
        identity_source_activation_ms: 150,
        ..EmulatorConfig::default()
    };
    let role_after = |rng: &mut StdRng| {
        let (lo, hi) = timing.role_after;
        rng.gen_range(lo.as_millis() as u64..=hi.as_millis() as u64)
    };
    let mut originals = Vec::new();
    for i in 0..n {
        let account = format!("{}", 900_000_000_000u64 + i as u64);
        let portal = portal_arn(&account, i);
        if rng.gen_bool(0.1) {
            let (events, org) = revision_requests(rng, i, &account, &portal);
            emulator.accounts.extend(org);
            originals.extend(events);
            continue;
        }
        if rng.gen_bool(0.08) {
            let (events, org) = closure_requests(rng, i, &account, &portal);
            emulator.accounts.extend(org);
            originals.extend(events);
            continue;
        }
        let id = uuid(rng);
        let roll = rng.gen_range(0..100);
        let (kind, event, org) = match roll {
            0..=43 => {
                let mut org = None;
                let mut detail = json!({});
                if rng.gen_bool(0.7) {
                    detail["identityCenterInstance"] = instance_detail(rng, i);
                }
                if rng.gen_bool(0.5) {
                    org = Some(AccountConfig::new(account.as_str()).with_portal(portal.as_str()));
                    detail["webIdentityProvider"] = provider(rng, &portal, i);
                }
                (
                    "own request".to_string(),
                    onboarding_requested(&id, &account, detail),
                    org,
                )
            }
            44..=52 => (
                "Control Tower CreateManagedAccount".to_string(),
                control_tower(&id, "CreateManagedAccount", &account, "SUCCEEDED"),
                None,
            ),
            53..=58 => (
                "Control Tower UpdateManagedAccount".to_string(),
                control_tower(&id, "UpdateManagedAccount", &account, "SUCCEEDED"),
                None,
            ),
            59..=65 => (
                "Organizations CreateAccountResult".to_string(),
                organizations(&id, &account, "SUCCEEDED"),
                None,
            ),
            66..=67 => (
                "ignored (Control Tower IN_PROGRESS)".to_string(),
                control_tower(&id, "CreateManagedAccount", &account, "IN_PROGRESS"),
                None,
            ),
            68 => (
                "ignored (Organizations FAILED)".to_string(),
                organizations(&id, &account, "FAILED"),
                None,
            ),
            69..=70 => {
                let mut e = onboarding_requested(&id, &account, json!({ "colour": "blue" }));
                if roll == 70 {
                    e["detail"]["schemaVersion"] = json!("2");
                }
                ("invalid (rejected by the decoder)".to_string(), e, None)
            }
            71..=73 => {
                // The member role is refused for good: both account steps retry through the
                // grace window, then fail.
                let org = AccountConfig::new(account.as_str()).refusing_role("*");
                let mut detail = json!({});
                if rng.gen_bool(0.5) {
                    detail["webIdentityProvider"] = provider(rng, &portal, i);
                }
                (
                    "role refused".to_string(),
                    onboarding_requested(&id, &account, detail),
                    Some(org),
                )
            }
            74..=75 => (
                "instance fails (CREATE_FAILED)".to_string(),
                control_tower(&id, "CreateManagedAccount", &account, "SUCCEEDED"),
                Some(
                    AccountConfig::new(account.as_str())
                        .failing_instance_creation("The account has reached its quota"),
                ),
            ),
            76..=78 => {
                // A portal that does not exist: the provider step fails, the instance is made.
                let detail = json!({
                    "identityCenterInstance": { "name": format!("acct-{i}") },
                    "webIdentityProvider": provider(rng, &portal, i),
                });
                (
                    "unknown portal".to_string(),
                    onboarding_requested(&id, &account, detail),
                    None,
                )
            }
            79..=86 => {
                // A brand-new account: its member role is deployed a while after its event.
                let ms = role_after(rng);
                let mut org = AccountConfig::new(account.as_str()).role_appearing_after(ms);
                let pick = rng.gen_range(0..100);
                let event = if pick < 40 {
                    let mut detail = json!({ "identityCenterInstance": instance_detail(rng, i) });
                    if rng.gen_bool(0.5) {
                        org = org.with_portal(portal.as_str());
                        detail["webIdentityProvider"] = provider(rng, &portal, i);
                    }
                    onboarding_requested(&id, &account, detail)
                } else if pick < 75 {
                    control_tower(&id, "CreateManagedAccount", &account, "SUCCEEDED")
                } else {
                    organizations(&id, &account, "SUCCEEDED")
                };
                (format!("late role, after {ms} ms"), event, Some(org))
            }
            87..=91 => {
                let seeded = format!("existing-{i}");
                let mut org = AccountConfig::new(account.as_str())
                    .with_instance(SeededInstance::active(Some(seeded.as_str())));
                let event = if rng.gen_bool(0.6) {
                    let mut detail = json!({});
                    if rng.gen_bool(0.6) {
                        // Named like the existing one, or not: an account holds one instance.
                        detail["identityCenterInstance"] = if rng.gen_bool(0.5) {
                            json!({ "name": seeded })
                        } else {
                            instance_detail(rng, i)
                        };
                    }
                    if rng.gen_bool(0.3) {
                        org = org.with_portal(portal.as_str());
                        detail["webIdentityProvider"] = provider(rng, &portal, i);
                    }
                    onboarding_requested(&id, &account, detail)
                } else {
                    control_tower(&id, "UpdateManagedAccount", &account, "SUCCEEDED")
                };
                ("pre-existing instance".to_string(), event, Some(org))
            }
            _ => {
                // The portal already carries a provider of the requested name: another
                // team's (foreign), or exactly what is asked (matching).
                let matching = roll >= 97;
                let requested = provider(rng, &portal, i);
                let seeded = seeded_provider(rng, &requested, matching);
                let org = AccountConfig::new(account.as_str())
                    .with_portal_provider(portal.as_str(), seeded);
                let mut detail = json!({ "webIdentityProvider": requested });
                if rng.gen_bool(0.5) {
                    detail["identityCenterInstance"] = instance_detail(rng, i);
                }
                let kind = if matching {
                    "matching provider"
                } else {
                    "foreign provider"
                };
                (
                    kind.to_string(),
                    onboarding_requested(&id, &account, detail),
                    Some(org),
                )
            }
        };
        if let Some(org) = org {
            emulator.accounts.push(org);
        }
        let direct = rng.gen_bool(0.15);
        originals.push(Original {
            label: format!("generated #{i} ({kind}, account {account})"),
            body: event.to_string(),
            event: Some(event),
            direct,
            copies: rng.gen_range(1..=4),
            revisions: false,
        });
        if roll == 69 && rng.gen_bool(0.3) {
            // A body that is not an event at all (only SQS can carry it).
            originals.push(Original {
                label: format!("generated #{i} (not JSON)"),
                body: format!("onboard account {account} please"),
                event: None,
                direct: false,
                copies: rng.gen_range(1..=4),
                revisions: false,
            });
        }
    }
    originals.extend(sample_events(rng, events_dir, &mut emulator)?);
    emulator.validate()?;
    Ok(Plan {
        originals,
        emulator,
    })
}

/// Which population a step key belongs to, derived from the request and the organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Population {
    /// Reachable at once, nothing in the way: the resource is made.
    New,
    /// The account's member role appears `after_ms` after the first AssumeRole into it.
    LateRole {
        after_ms: u64,
    },
    /// The account has an ACTIVE instance from before the run.
    PreExistingInstance,
    /// The portal has a provider of the requested name, type and non-secret details.
    MatchingProvider,
    /// The portal has a provider of the requested name that differs from the request.
    ForeignProvider,
    RoleRefused,
    InstanceFails,
    UnknownPortal,
    /// The account closed or left the organization after every request for the step: the
    /// step ends RETIRED, announced "Account Offboarded", nothing made after the closure.
    Departed,
    /// The account departed, and a request newer than the departure asks for the step (a
    /// reopened account onboarded again): READY, the old resource adopted if there was one.
    Reopened,
}

impl Population {
    pub fn name(&self) -> String {
        match self {
            Population::New => "new account".into(),
            Population::LateRole { after_ms } => {
                format!("late role (appears {after_ms} ms after the first AssumeRole)")
            }
            Population::PreExistingInstance => "pre-existing instance".into(),
            Population::MatchingProvider => "matching pre-existing provider".into(),
            Population::ForeignProvider => "foreign provider".into(),
            Population::RoleRefused => "role refused".into(),
            Population::InstanceFails => "instance fails".into(),
            Population::UnknownPortal => "unknown portal".into(),
            Population::Departed => "departed account".into(),
            Population::Reopened => "reopened account (a request newer than its departure)".into(),
        }
    }

    /// The status the step must end in.
    pub fn want(&self) -> Status {
        match self {
            Population::New
            | Population::LateRole { .. }
            | Population::PreExistingInstance
            | Population::MatchingProvider
            | Population::Reopened => Status::Ready,
            Population::Departed => Status::Retired,
            Population::ForeignProvider
            | Population::RoleRefused
            | Population::InstanceFails
            | Population::UnknownPortal => Status::Failed,
        }
    }

    /// The codes a FAILED step of the population may record.
    pub fn codes(&self) -> &'static [&'static str] {
        match self {
            Population::ForeignProvider => &["ForeignResourceConflict"],
            Population::RoleRefused => &[onboarding::error::code::MEMBER_ROLE_UNAVAILABLE],
            // Found failed by its own readiness check, or by a lookup after a lost response;
            // or, when the emulator's injected conflicts outlast the grace window (a failed
            // instance is never listed), failed as a conflict that never propagated.
            Population::InstanceFails => &[
                "CREATE_FAILED",
                "InstanceNotAdoptable",
                "ConflictNotPropagated",
            ],
            Population::UnknownPortal => &["ResourceNotFoundException"],
            _ => &[],
        }
    }

    /// The origins a READY step of the population may record (and announce).
    pub fn origins(&self) -> &'static [Origin] {
        match self {
            Population::PreExistingInstance | Population::MatchingProvider => {
                &[Origin::PreExisting]
            }
            // Made by us: by this delivery's create, or by an earlier attempt whose response
            // was lost.
            _ => &[Origin::Created, Origin::Adopted],
        }
    }

    /// The step's resource is one that existed before the run.
    pub fn seeded(&self) -> bool {
        matches!(
            self,
            Population::PreExistingInstance
                | Population::MatchingProvider
                | Population::ForeignProvider
        )
    }

    /// No resource of the step can be made (no role, no portal, a foreign one in the way).
    pub fn unreachable(&self) -> bool {
        matches!(self, Population::RoleRefused | Population::UnknownPortal)
    }
}

/// What one key must end as.
#[derive(Debug)]
pub struct Expect {
    pub key: StepKey,
    /// The function (queue) owning the step.
    pub step: &'static str,
    pub population: Population,
    /// The originals (plan indexes) whose requests name the key.
    pub origins: Vec<usize>,
    /// A key of the revisions population: its requests and the state it must end in.
    pub revisions: Option<Revisions>,
    /// The departures of the key's account (plan index, revision), oldest first.
    pub departures: Vec<(usize, Revision)>,
}

/// One request for a key of the revisions population.
#[derive(Debug)]
pub struct Rev {
    pub revision: Revision,
    /// The original (plan index) it comes from.
    pub origin: usize,
    /// The fields it names, flat (`name`, `tags.<key>`, `type`, `details.<key>`,
    /// `secretId`; a tag's `null`: its removal); none for Control Tower.
    pub fields: BTreeMap<String, Value>,
}

/// The requests of a key of the revisions population, oldest first, and the wanted state.
#[derive(Debug)]
pub struct Revisions {
    pub list: Vec<Rev>,
    /// The per-field last-writer-wins merge of every request: each field the value of the
    /// request with the greatest revision that names it.
    pub wanted: BTreeMap<String, Value>,
}

impl Revisions {
    /// The requests that specify something (the own ones).
    pub fn own(&self) -> usize {
        self.list.iter().filter(|r| !r.fields.is_empty()).count()
    }

    /// Every tag key a request of the key names: the only ones the project sets.
    pub fn tag_keys(&self) -> std::collections::BTreeSet<String> {
        self.list
            .iter()
            .flat_map(|r| r.fields.keys())
            .filter_map(|f| f.strip_prefix("tags.").map(str::to_string))
            .collect()
    }

    /// The wanted values of the fields `prefix.<key>`, by key (`null`: absent).
    pub fn wanted_map(&self, prefix: &str) -> BTreeMap<String, Value> {
        self.wanted
            .iter()
            .filter_map(|(f, v)| {
                Some((
                    f.strip_prefix(prefix)?.strip_prefix('.')?.to_string(),
                    v.clone(),
                ))
            })
            .collect()
    }

    /// The index of the request `origin` comes from.
    pub fn index_of(&self, origin: usize) -> Option<usize> {
        self.list.iter().position(|r| r.origin == origin)
    }
}

impl Expect {
    pub fn want(&self) -> Status {
        self.population.want()
    }
}

pub struct Expectations {
    pub keys: BTreeMap<String, Expect>,
    /// Indexes of the originals the decoder rejects.
    pub invalid: Vec<usize>,
    /// The keys each original's request names.
    pub keys_of: HashMap<usize, Vec<String>>,
}

impl Expectations {
    /// The key a step's event is about: the key of `step` named by the request with event
    /// id `event_id` (`origin_of` maps event ids, replayed ones included, to originals).
    pub fn key_of_event(
        &self,
        step: &str,
        event_id: &str,
        origin_of: &HashMap<String, usize>,
    ) -> Option<(&String, &Expect)> {
        let origin = origin_of.get(event_id)?;
        self.keys_of
            .get(origin)?
            .iter()
            .filter_map(|k| self.keys.get_key_value(k))
            .find(|(_, x)| x.step == step)
    }
}

/// The fields a request's step object names, flat: each scalar under its field name
/// (`scalars`: the request's member and the field it sets), and each key of `tags` and
/// `details` as `tags.<key>` / `details.<key>` (a `null` tag value: the tag's removal).
fn named_fields(spec: &Value, scalars: &[(&str, &str)]) -> BTreeMap<String, Value> {
    let mut fields = BTreeMap::new();
    for (member, field) in scalars {
        if let Some(v) = spec.get(*member).filter(|v| !v.is_null()) {
            fields.insert((*field).to_string(), v.clone());
        }
    }
    for map in ["tags", "details"] {
        for (key, v) in spec
            .get(map)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            fields.insert(format!("{map}.{key}"), v.clone());
        }
    }
    fields
}

/// The seeded provider of `spec`'s name on its portal, if any, and whether it matches the
/// request (type and every requested non-secret detail equal).
fn seeded_provider_of(config: &EmulatorConfig, spec: &WebIdentityProviderSpec) -> Option<bool> {
    let p = config
        .accounts
        .iter()
        .flat_map(|a| a.portals.iter())
        .filter(|p| p.portal_arn == spec.portal_arn)
        .flat_map(|p| p.identity_providers.iter())
        .find(|p| p.name == spec.provider_name)?;
    Some(
        p.provider_type == spec.provider_type.as_str()
            && spec
                .details
                .iter()
                .all(|(k, v)| p.details.get(k) == Some(v)),
    )
}

/// The expected end of every key a decodable original names, from the requests and the
/// emulator organization alone.
pub fn expectations(originals: &[Original], config: &EmulatorConfig) -> Expectations {
    let accept = Accept::default();
    let account = |id: &str| config.accounts.iter().find(|a| a.account_id == id);
    let refused = |id: &str| account(id).is_some_and(|a| !a.refused_roles.is_empty());
    let late = |id: &str| account(id).and_then(|a| a.role_appears_after_ms);
    let portal_exists = |arn: &str| {
        config
            .accounts
            .iter()
            .any(|a| a.portals.iter().any(|p| p.portal_arn == arn))
    };
    let mut keys: BTreeMap<String, Expect> = BTreeMap::new();
    let mut keys_of: HashMap<usize, Vec<String>> = HashMap::new();
    let mut invalid = Vec::new();
    let mut add = |key: StepKey, step, population, origin| {
        let name = key.to_string();
        keys_of.entry(origin).or_default().push(name.clone());
        let x = keys.entry(name).or_insert_with(|| Expect {
            key,
            step,
            population,
            origins: Vec::new(),
            revisions: None,
            departures: Vec::new(),
        });
        x.origins.push(origin);
    };
    // Each account's departures, and each key's newest request.
    let mut departures: BTreeMap<String, Vec<(usize, Revision)>> = BTreeMap::new();
    for (i, o) in originals.iter().enumerate() {
        if let Ok(Decoded::Offboard(r)) = decode_body(&o.body, &accept) {
            departures
                .entry(r.account_id.clone())
                .or_default()
                .push((i, Revision::at(r.time.as_deref(), &r.event_id)));
        }
    }
    let mut newest: HashMap<String, Revision> = HashMap::new();
    let mut saw = |key: &StepKey, revision: Revision| {
        let e = newest
            .entry(key.to_string())
            .or_insert_with(|| revision.clone());
        if revision > *e {
            *e = revision;
        }
    };
    let mut revs: BTreeMap<String, Vec<Rev>> = BTreeMap::new();
    for (i, o) in originals.iter().enumerate() {
        match decode_body(&o.body, &accept) {
            Ok(Decoded::Request(r)) => {
                let id = r.account_id.as_str();
                let population = if refused(id) {
                    Population::RoleRefused
                } else if account(id).is_some_and(|a| a.instance_failure.is_some()) {
                    Population::InstanceFails
                } else if account(id).is_some_and(|a| a.instance.is_some()) {
                    Population::PreExistingInstance
                } else if let Some(after_ms) = late(id) {
                    Population::LateRole { after_ms }
                } else {
                    Population::New
                };
                add(StepKey::account(id, INSTANCE), INSTANCE, population, i);
                saw(&StepKey::account(id, INSTANCE), r.revision());
                if o.revisions {
                    let raw = &o
                        .event
                        .as_ref()
                        .map_or(Value::Null, |e| e["detail"].clone());
                    let fields = named_fields(&raw["identityCenterInstance"], &[("name", "name")]);
                    revs.entry(StepKey::account(id, INSTANCE).to_string())
                        .or_default()
                        .push(Rev {
                            revision: r.revision(),
                            origin: i,
                            fields,
                        });
                }
                add(
                    StepKey::org(config.organization_instance_arn(), APPROVAL),
                    APPROVAL,
                    Population::New,
                    i,
                );
                if let Some(p) = &r.web_identity_provider {
                    let owner = p.portal_account_id.as_str();
                    let population = if refused(owner) {
                        Population::RoleRefused
                    } else if !portal_exists(&p.portal_arn) {
                        Population::UnknownPortal
                    } else if let Some(matching) = seeded_provider_of(config, p) {
                        if matching {
                            Population::MatchingProvider
                        } else {
                            Population::ForeignProvider
                        }
                    } else if let Some(after_ms) = late(owner) {
                        Population::LateRole { after_ms }
                    } else {
                        Population::New
                    };
                    let step = format!("{WEB}#{}#{}", p.portal_arn, p.provider_name);
                    add(StepKey::account(owner, &step), WEB, population, i);
                    saw(&StepKey::account(owner, &step), r.revision());
                    if o.revisions {
                        let raw = &o
                            .event
                            .as_ref()
                            .map_or(Value::Null, |e| e["detail"].clone());
                        let fields = named_fields(
                            &raw["webIdentityProvider"],
                            &[("providerType", "type"), ("secretId", "secretId")],
                        );
                        revs.entry(StepKey::account(owner, &step).to_string())
                            .or_default()
                            .push(Rev {
                                revision: r.revision(),
                                origin: i,
                                fields,
                            });
                    }
                }
            }
            // Departures retire; they are read above.
            Ok(Decoded::Ignored { .. } | Decoded::Offboard(_)) => {}
            Err(_) => invalid.push(i),
        }
    }
    for (name, mut list) in revs {
        list.sort_by(|a, b| a.revision.cmp(&b.revision));
        // Per field, the request with the greatest revision that names it (oldest first,
        // so the newest overwrites); a request naming nothing changes nothing.
        let mut wanted = BTreeMap::new();
        for r in &list {
            wanted.extend(r.fields.clone());
        }
        if let Some(x) = keys.get_mut(&name) {
            x.revisions = Some(Revisions { list, wanted });
        }
    }
    // A departed account: its instance step is retired even if no request reached it (a
    // placeholder); a step ends RETIRED unless a request newer than every departure asks
    // for it (the account reopened and onboarded again). The departures name the account's
    // steps (their "Account Offboarded" events).
    for (account, mut list) in departures {
        list.sort_by(|a, b| a.1.cmp(&b.1));
        let instance = StepKey::account(&account, INSTANCE);
        keys.entry(instance.to_string()).or_insert_with(|| Expect {
            key: instance,
            step: INSTANCE,
            population: Population::Departed,
            origins: list.iter().map(|(i, _)| *i).collect(),
            revisions: None,
            departures: Vec::new(),
        });
        let Some(last) = list.last().map(|(_, r)| r.clone()) else {
            continue;
        };
        for (name, x) in keys.iter_mut() {
            if x.step == APPROVAL || x.key.account_id() != Some(account.as_str()) {
                continue;
            }
            let outlives = newest.get(name).is_some_and(|r| *r > last);
            x.population = match (x.population, outlives) {
                (Population::New | Population::LateRole { .. } | Population::Departed, true) => {
                    Population::Reopened
                }
                (_, true) => x.population,
                (_, false) => Population::Departed,
            };
            x.departures = list.clone();
            for (i, _) in &list {
                keys_of.entry(*i).or_default().push(name.clone());
            }
        }
    }
    Expectations {
        keys,
        invalid,
        keys_of,
    }
}

/// Every file in `events/`: a direct event, or an SQS payload whose record bodies are events.
fn sample_events(
    rng: &mut StdRng,
    dir: &Path,
    emulator: &mut EmulatorConfig,
) -> Result<Vec<Original>, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let name = format!(
            "events/{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{name}: {e}"))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| format!("{name}: {e}"))?;
        let bodies: Vec<(String, bool)> = match value.get("Records").and_then(Value::as_array) {
            Some(records) => records
                .iter()
                .filter_map(|r| r["body"].as_str().map(|b| (b.to_string(), false)))
                .collect(),
            None => vec![(value.to_string(), rng.gen_bool(0.3))],
        };
        for (k, (body, direct)) in bodies.into_iter().enumerate() {
            let event: Option<Value> = serde_json::from_str(&body).ok().filter(Value::is_object);
            if let Some(portal) = event
                .as_ref()
                .and_then(|e| e["detail"]["webIdentityProvider"]["portalArn"].as_str())
            {
                let account = portal.split(':').nth(4).unwrap_or_default().to_string();
                let known = emulator
                    .accounts
                    .iter()
                    .any(|a| a.portals.iter().any(|p| p.portal_arn == portal));
                if !known {
                    emulator
                        .accounts
                        .push(AccountConfig::new(account).with_portal(portal));
                }
            }
            out.push(Original {
                label: format!("{name} #{k}"),
                direct: direct && event.is_some(),
                event,
                body,
                copies: rng.gen_range(1..=4),
                revisions: false,
            });
        }
    }
    Ok(out)
}

/// Each message of a queue, as `(origin index, copy)`, shuffled.
pub fn deliveries(originals: &[Original], rng: &mut StdRng) -> Vec<(usize, u32)> {
    let mut out: Vec<(usize, u32)> = originals
        .iter()
        .enumerate()
        .flat_map(|(i, o)| (0..o.copies).map(move |c| (i, c)))
        .collect();
    out.shuffle(rng);
    out
}

/// The archive replay of an event: the same event with a new id and a `replay-name`.
pub fn replayed(event: &Value, rng: &mut StdRng, replay_name: &str) -> Value {
    let mut e = event.clone();
    e["id"] = json!(uuid(rng));
    e["replay-name"] = json!(replay_name);
    e
}
