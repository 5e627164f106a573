//! Deterministic ClientTokens.
//!
//! A step sends the same token on every retry, redelivery, replay and crash-restart, so the
//! control-plane API can recognise a repeated create. Only an operator's retry (a new
//! generation) changes it.

use uuid::Uuid;

use super::key::StepKey;

/// The project's UUIDv5 namespace for ClientTokens:
/// `uuid5(NAMESPACE_URL, "urn:identity-onboarding:client-token:v1")`.
pub const TOKEN_NAMESPACE: Uuid = Uuid::from_u128(0x1320f65c_8946_50f0_ab5e_084e928ede5a);

/// The ClientToken of `key` in `generation`: the UUIDv5, under [`TOKEN_NAMESPACE`], of the
/// JSON array `[scope, step, generation]` (JSON keeps the three parts unambiguous).
///
/// 36 printable ASCII characters: fits SSO Admin (1-64, `^[!-~]+$`), MPA (0-4096) and
/// WorkSpaces Web (1-512).
pub fn client_token(key: &StepKey, generation: u32) -> String {
    let name = serde_json::json!([key.scope, key.step, generation]).to_string();
    Uuid::new_v5(&TOKEN_NAMESPACE, name.as_bytes())
        .hyphenated()
        .to_string()
}

/// The ClientToken of an update of `key` in `generation` to `revision`: the UUIDv5 of
/// `[scope, step, generation, revision]`. Every holder of the same update sends the same one.
pub fn update_token(
    key: &StepKey,
    generation: u32,
    revision: &crate::revision::Revision,
) -> String {
    let name = serde_json::json!([key.scope, key.step, generation, revision.as_str()]).to_string();
    Uuid::new_v5(&TOKEN_NAMESPACE, name.as_bytes())
        .hyphenated()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_is_derived_as_documented() {
        assert_eq!(
            TOKEN_NAMESPACE,
            Uuid::new_v5(
                &Uuid::NAMESPACE_URL,
                b"urn:identity-onboarding:client-token:v1"
            )
        );
    }

    #[test]
    fn token_is_stable() {
        // Computed independently: python3 -c 'import uuid; ns=uuid.uuid5(uuid.NAMESPACE_URL,
        // "urn:identity-onboarding:client-token:v1");
        // print(uuid.uuid5(ns, "[\"account#123456789012\",\"identity-center-instance\",0]"))'
        let key = StepKey::account("123456789012", "identity-center-instance");
        assert_eq!(
            client_token(&key, 0),
            "65d4c74c-3437-5006-bb96-154c53f941c5"
        );
        assert_eq!(
            client_token(&key, 1),
            "8b71d57b-0fbd-5abd-8cfa-ab6c70f7d183"
        );
    }

    #[test]
    fn token_fits_every_api() {
        let keys = [
            StepKey::account("123456789012", "identity-center-instance"),
            StepKey::org(
                "arn:aws:sso:::instance/ssoins-1234567890abcdef",
                "approval-identity-source",
            ),
            StepKey::account(
                "123456789012",
                &format!("web-identity-provider#arn:aws:workspaces-web:us-east-1:123456789012:portal/{}#{}", "x".repeat(36), "é".repeat(32)),
            ),
        ];
        for key in &keys {
            for generation in [0, 1, u32::MAX] {
                let token = client_token(key, generation);
                assert_eq!(token.len(), 36);
                // SSO Admin 1-64 ^[!-~]+$, MPA 0-4096, WorkSpaces Web 1-512.
                assert!(token.bytes().all(|b| (b'!'..=b'~').contains(&b)), "{token}");
                assert!((1..=64).contains(&token.len()));
            }
        }
    }

    #[test]
    fn token_separates_scope_step_and_generation() {
        let a = StepKey {
            scope: "account#1".into(),
            step: "2".into(),
        };
        let b = StepKey {
            scope: "account#".into(),
            step: "12".into(),
        };
        assert_ne!(client_token(&a, 0), client_token(&b, 0));
        assert_ne!(client_token(&a, 0), client_token(&a, 1));
        let c = StepKey::account("123456789012", "approval-identity-source");
        let d = StepKey::account("123456789012", "identity-center-instance");
        assert_ne!(client_token(&c, 0), client_token(&d, 0));
    }
}
