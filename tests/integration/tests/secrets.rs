//! Secret provider details never leave Secrets Manager except towards WorkSpaces Web: not in
//! logs (captured at trace level in the functions' own JSON format), not in ledger items, not
//! in emitted events, not in replies. Canary values make any leak visible.

use std::io::Write;
use std::sync::{Arc, Mutex};

use identity_emulator::{AccountConfig, Config as EmulatorConfig, FaultConfig, FaultRule};
use integration_tests::deliveries::{oidc_provider, onboarding_requested, sqs_batch, Record};
use integration_tests::stack::Stack;
use serde_json::json;

const CLIENT_SECRET: &str = "canary-client-secret-7f3a9c";
const PRIVATE_KEY: &str = "canary-private-key-41d0be";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn canary_secrets_never_reach_logs_ledger_events_or_replies() {
    let logs = Captured::default();
    std::env::set_var("RUST_LOG", "trace");
    let writer = logs.clone();
    onboarding::telemetry::init_logging_to(move || writer.clone());

    let account = "900000000001";
    let portal = format!(
        "arn:aws:workspaces-web:us-east-1:{account}:portal/7a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d"
    );
    let mut config = EmulatorConfig::default();
    config
        .accounts
        .push(AccountConfig::new(account).with_portal(&portal));
    let stack = Stack::start_with("secrets", config).await;
    stack
        .put_secret(
            "onboarding/oidc",
            &json!({ "client_secret": CLIENT_SECRET }),
        )
        .await;
    stack
        .put_secret("onboarding/apple", &json!({ "private_key": PRIVATE_KEY }))
        .await;
    let handler = stack.web_handler(stack.engine());

    let oidc = onboarding_requested(
        "s-1",
        account,
        oidc_provider(&portal, "corp-oidc", "onboarding/oidc"),
    );
    let apple = onboarding_requested(
        "s-2",
        account,
        json!({ "webIdentityProvider": {
            "portalArn": portal,
            "providerName": "apple",
            "providerType": "SignInWithApple",
            "details": { "client_id": "com.example.web", "team_id": "TEAM123456", "key_id": "KEY1234567", "authorize_scopes": "email" },
            "secretId": "onboarding/apple"
        } }),
    );
    // A first attempt that fails after the secret was read (a server error), then success:
    // the error paths log too.
    stack.emulator.set_faults(FaultConfig::new(1).with_rule(
        "CreateIdentityProvider",
        FaultRule {
            server_error_rate: 1.0,
            max_faults: Some(3),
            ..FaultRule::default()
        },
    ));
    let batch = sqs_batch(&[Record::of("s-1", &oidc), Record::of("s-2", &apple)]);
    let mut replies = Vec::new();
    for _ in 0..5 {
        let (reply, _) = handler.handle(batch.clone(), None).await.unwrap();
        replies.push(reply.to_string());
    }
    // A secret sent inside an event is refused without being echoed.
    let leaky = onboarding_requested(
        "s-3",
        account,
        json!({ "webIdentityProvider": {
            "portalArn": portal, "providerName": "leaky", "providerType": "OIDC",
            "details": { "client_id": "x", "oidc_issuer": "https://idp.example.com", "authorize_scopes": "openid", "attributes_request_method": "GET", "client_secret": CLIENT_SECRET },
            "secretId": "onboarding/oidc"
        } }),
    );
    let (reply, _) = handler.handle(leaky, None).await.unwrap();
    assert_eq!(reply["status"], "rejected", "{reply}");
    replies.push(reply.to_string());

    assert_eq!(
        stack.emulator.counters().created("CreateIdentityProvider"),
        2,
        "both providers exist"
    );
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("s-1"), "logs were captured");
    let ledger = format!("{:?}", stack.ledger_items().await);
    let events = format!("{:?}", stack.emitted().await);
    let state = stack.emulator.state().to_string();
    for canary in [CLIENT_SECRET, PRIVATE_KEY] {
        assert!(!logs.contains(canary), "secret in logs");
        assert!(!ledger.contains(canary), "secret in the ledger");
        assert!(!events.contains(canary), "secret in emitted events");
        assert!(
            !replies.iter().any(|r| r.contains(canary)),
            "secret in a reply"
        );
        assert!(
            !state.contains(canary),
            "the emulator's state dump shows secrets"
        );
    }
}
