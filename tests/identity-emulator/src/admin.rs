//! The admin API under `/_emulator/` (a prefix no AWS API uses): counters, state,
//! reset, faults, quotas, forgetting ClientTokens, closing and reopening accounts, health.
//! JSON in and out.

use http::Method;
use serde_json::{json, Value};

use crate::faults::{FaultConfig, FaultState};
use crate::protocol::{admin_json, HttpResponse};
use crate::quotas::{QuotaConfig, QuotaState};
use crate::server::Shared;

pub(crate) fn handle(shared: &Shared, method: &Method, path: &str, body: &[u8]) -> HttpResponse {
    let route = path.trim_start_matches("/_emulator").trim_matches('/');
    match (route, method) {
        ("health", &Method::GET) => admin_json(200, &json!({"status": "ok"})),
        ("counters", &Method::GET) => {
            let counters = shared.world().counters.clone();
            admin_json(200, &serde_json::to_value(counters).unwrap_or(Value::Null))
        }
        ("state", &Method::GET) => admin_json(200, &shared.world().dump()),
        ("iam/observed", &Method::GET) => {
            let observed: Vec<Value> = shared
                .world()
                .observed
                .list()
                .into_iter()
                .map(|(principal, action, allowed)| {
                    json!({"principal": principal, "action": action, "allowed": allowed})
                })
                .collect();
            admin_json(200, &Value::Array(observed))
        }
        ("reset", &Method::POST) => {
            shared.world().reset();
            admin_json(200, &json!({"reset": true}))
        }
        ("forget-tokens", &Method::POST) => {
            shared.world().forget_tokens();
            admin_json(200, &json!({"forgot_tokens": true}))
        }
        ("faults", &Method::GET) => {
            let config = shared.world().faults.config().clone();
            admin_json(200, &serde_json::to_value(config).unwrap_or(Value::Null))
        }
        ("faults", &Method::POST) => {
            let parsed = if body.iter().all(u8::is_ascii_whitespace) {
                Ok(FaultConfig::default())
            } else {
                serde_json::from_slice::<FaultConfig>(body).map_err(|e| e.to_string())
            };
            match parsed.and_then(|c| c.validate().map(|_| c)) {
                Ok(config) => {
                    let echo = serde_json::to_value(&config).unwrap_or(Value::Null);
                    shared.world().faults = FaultState::new(config);
                    admin_json(200, &echo)
                }
                Err(e) => admin_json(400, &json!({"error": format!("invalid fault config: {e}")})),
            }
        }
        ("quotas", &Method::GET) => {
            let config = shared.world().quotas.config().cloned();
            admin_json(200, &serde_json::to_value(config).unwrap_or(Value::Null))
        }
        ("quotas", &Method::POST) => {
            // `null` or an empty body: no quotas; `"documented"`: the defaults
            let parsed = if body.iter().all(u8::is_ascii_whitespace) {
                Ok(None)
            } else {
                serde_json::from_slice::<Option<QuotaConfig>>(body).map_err(|e| e.to_string())
            };
            let checked = parsed.and_then(|c| match &c {
                Some(q) => q.validate().map(|_| c),
                None => Ok(c),
            });
            match checked {
                Ok(config) => {
                    let echo = serde_json::to_value(&config).unwrap_or(Value::Null);
                    shared.world().quotas = QuotaState::new(config);
                    admin_json(200, &echo)
                }
                Err(e) => admin_json(400, &json!({"error": format!("invalid quota config: {e}")})),
            }
        }
        (route, &Method::POST) if route.starts_with("accounts/") => {
            match route.trim_start_matches("accounts/").split_once('/') {
                Some((id, action @ ("close" | "reopen"))) if crate::config::is_account_id(id) => {
                    let mut world = shared.world();
                    if action == "close" {
                        world.closed.insert(id.to_string());
                    } else {
                        world.closed.remove(id);
                    }
                    admin_json(200, &json!({"account_id": id, "closed": action == "close"}))
                }
                _ => admin_json(
                    404,
                    &json!({"error": format!("unknown admin path {path}: POST /_emulator/accounts/<12-digit id>/close or /reopen")}),
                ),
            }
        }
        (
            "health" | "counters" | "state" | "reset" | "faults" | "quotas" | "forget-tokens"
            | "iam/observed",
            _,
        ) => admin_json(
            405,
            &json!({"error": format!("{method} not allowed on {path}")}),
        ),
        _ => admin_json(
            404,
            &json!({"error": format!("unknown admin path {path}"),
                    "paths": ["GET /_emulator/health", "GET /_emulator/counters",
                              "GET /_emulator/state", "POST /_emulator/reset",
                              "GET /_emulator/faults", "POST /_emulator/faults",
                              "GET /_emulator/quotas", "POST /_emulator/quotas",
                              "POST /_emulator/forget-tokens", "GET /_emulator/iam/observed",
                              "POST /_emulator/accounts/<id>/close", "POST /_emulator/accounts/<id>/reopen"]}),
        ),
    }
}
