//! What the replay delivers: N generated onboarding requests of every kind (distinct accounts,
//! a share with portal identity providers, some that must fail permanently, some to ignore,
//! some invalid) plus every event in `events/`, and the emulator organization they need.

use std::path::Path;

use identity_emulator::{AccountConfig, Config as EmulatorConfig};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};

use crate::deliveries::{control_tower, onboarding_requested, organizations};

/// The secret every OIDC provider of the run names (the `events/` samples use it too).
pub const SECRET_ID: &str = "onboarding/corp-oidc";

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

/// The generated requests, `events/`, copies and delivery modes, all from `rng`.
pub fn generate(n: usize, rng: &mut StdRng, events_dir: &Path) -> Result<Plan, String> {
    let mut emulator = EmulatorConfig {
        instance_activation_ms: 150,
        identity_source_activation_ms: 150,
        ..EmulatorConfig::default()
    };
    let mut originals = Vec::new();
    for i in 0..n {
        let account = format!("{}", 900_000_000_000u64 + i as u64);
        let id = uuid(rng);
        let roll = rng.gen_range(0..100);
        let with_portal = |rng: &mut StdRng, emulator: &mut EmulatorConfig, seeded: bool| {
            let portal = portal_arn(&account, i);
            if seeded {
                emulator
                    .accounts
                    .push(AccountConfig::new(account.as_str()).with_portal(portal.as_str()));
            }
            provider(rng, &portal, i)
        };
        let (kind, event) = match roll {
            0..=54 => {
                let mut detail = json!({});
                if rng.gen_bool(0.7) {
                    let mut instance = json!({ "name": format!("acct-{i}") });
                    if rng.gen_bool(0.4) {
                        instance["tags"] = json!({ "CostCenter": format!("{}", 1000 + i % 97) });
                    }
                    detail["identityCenterInstance"] = instance;
                }
                if rng.gen_bool(0.5) {
                    detail["webIdentityProvider"] = with_portal(rng, &mut emulator, true);
                }
                ("own request", onboarding_requested(&id, &account, detail))
            }
            55..=66 => (
                "Control Tower CreateManagedAccount",
                control_tower(&id, "CreateManagedAccount", &account, "SUCCEEDED"),
            ),
            67..=74 => (
                "Control Tower UpdateManagedAccount",
                control_tower(&id, "UpdateManagedAccount", &account, "SUCCEEDED"),
            ),
            75..=83 => (
                "Organizations CreateAccountResult",
                organizations(&id, &account, "SUCCEEDED"),
            ),
            84..=85 => (
                "ignored (Control Tower IN_PROGRESS)",
                control_tower(&id, "CreateManagedAccount", &account, "IN_PROGRESS"),
            ),
            86 => (
                "ignored (Organizations FAILED)",
                organizations(&id, &account, "FAILED"),
            ),
            87..=88 => {
                let mut e = onboarding_requested(&id, &account, json!({ "colour": "blue" }));
                if roll == 88 {
                    e["detail"]["schemaVersion"] = json!("2");
                }
                ("invalid (rejected by the decoder)", e)
            }
            89..=91 => {
                // The member role is refused: both account steps fail with AccessDenied.
                emulator
                    .accounts
                    .push(AccountConfig::new(account.as_str()).refusing_role("*"));
                let mut detail = json!({});
                if rng.gen_bool(0.5) {
                    detail["webIdentityProvider"] = provider(rng, &portal_arn(&account, i), i);
                }
                (
                    "permanent failure (role refused)",
                    onboarding_requested(&id, &account, detail),
                )
            }
            92..=94 => {
                emulator.accounts.push(
                    AccountConfig::new(account.as_str())
                        .failing_instance_creation("The account has reached its quota"),
                );
                (
                    "permanent failure (instance CREATE_FAILED)",
                    control_tower(&id, "CreateManagedAccount", &account, "SUCCEEDED"),
                )
            }
            _ => {
                // A portal that does not exist: the provider step fails, the instance is made.
                let detail = json!({
                    "identityCenterInstance": { "name": format!("acct-{i}") },
                    "webIdentityProvider": with_portal(rng, &mut emulator, false),
                });
                (
                    "permanent failure (unknown portal)",
                    onboarding_requested(&id, &account, detail),
                )
            }
        };
        let direct = rng.gen_bool(0.15);
        originals.push(Original {
            label: format!("generated #{i} ({kind}, account {account})"),
            body: event.to_string(),
            event: Some(event),
            direct,
            copies: rng.gen_range(1..=4),
        });
        if roll == 87 && rng.gen_bool(0.3) {
            // A body that is not an event at all (only SQS can carry it).
            originals.push(Original {
                label: format!("generated #{i} (not JSON)"),
                body: format!("onboard account {account} please"),
                event: None,
                direct: false,
                copies: rng.gen_range(1..=4),
            });
        }
    }
    originals.extend(sample_events(rng, events_dir, &mut emulator)?);
    Ok(Plan {
        originals,
        emulator,
    })
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
