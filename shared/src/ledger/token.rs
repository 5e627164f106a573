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

/// A new item's token salt: 32 random hex digits, written once, by the write that creates
/// the item (`if_not_exists`), and never changed. Every token of the item is derived from
/// it, so an item deleted by TTL and created again (generation 0 again) never sends a token
/// the deleted one sent: whatever the service remembers of the old token cannot answer.
pub fn new_salt() -> String {
    Uuid::new_v4().simple().to_string()
}

/// The ClientToken of `key` in `generation`, for an item whose salt is `salt`.
///
/// With a salt: the UUIDv5, under [`TOKEN_NAMESPACE`], of the JSON array
/// `["create", scope, step, generation, salt]`. Without one (an item written before salts
/// existed): the UUIDv5 of `[scope, step, generation]`, exactly the token such items were
/// given, so an upgrade never changes a token in flight. (The two name shapes never meet:
/// JSON keeps the parts unambiguous, and the salted one starts with a tag.)
///
/// 36 printable ASCII characters: fits SSO Admin (1-64, `^[!-~]+$`), MPA (0-4096) and
/// WorkSpaces Web (1-512).
pub fn client_token(key: &StepKey, generation: u32, salt: Option<&str>) -> String {
    let name = match salt {
        Some(salt) => serde_json::json!(["create", key.scope, key.step, generation, salt]),
        None => serde_json::json!([key.scope, key.step, generation]),
    };
    uuid5(&name)
}

/// The token of an update of `key` in `generation` to `basis` (the desired version it
/// applies, `v<n>`; or the revision an adoption aligns to), for an item whose salt is
/// `salt`: the UUIDv5 of `["update", scope, step, generation, basis, salt]`, or, without a
/// salt (an item written before salts existed), of `[scope, step, generation, basis]`.
/// Every holder of the same update derives the same one; each call binds it to its own
/// parameters with [`call_token`].
pub fn update_token(key: &StepKey, generation: u32, basis: &str, salt: Option<&str>) -> String {
    let name = match salt {
        Some(salt) => serde_json::json!(["update", key.scope, key.step, generation, basis, salt]),
        None => serde_json::json!([key.scope, key.step, generation, basis]),
    };
    uuid5(&name)
}

/// The ClientToken of one call of an update (`update`: its [`update_token`]): bound to the
/// call's name and its exact parameters (canonical JSON; the caller passes names of secrets,
/// never their values), so a retried call is the same call and a different call, by another
/// holder or a later repair, is a different one, never an IdempotentParameterMismatch.
pub fn call_token(update: &str, call: &str, params: &serde_json::Value) -> String {
    uuid5(&serde_json::json!([
        "call",
        update,
        call,
        super::hash::canonical_json(params)
    ]))
}

fn uuid5(name: &serde_json::Value) -> String {
    Uuid::new_v5(&TOKEN_NAMESPACE, name.to_string().as_bytes())
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
            client_token(&key, 0, None),
            "65d4c74c-3437-5006-bb96-154c53f941c5"
        );
        assert_eq!(
            client_token(&key, 1, None),
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
                let token = client_token(key, generation, None);
                let salted = client_token(key, generation, Some(&new_salt()));
                assert_eq!(salted.len(), 36);
                assert!(
                    salted.bytes().all(|b| (b'!'..=b'~').contains(&b)),
                    "{salted}"
                );
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
        assert_ne!(client_token(&a, 0, None), client_token(&b, 0, None));
        assert_ne!(client_token(&a, 0, None), client_token(&a, 1, None));
        let c = StepKey::account("123456789012", "approval-identity-source");
        let d = StepKey::account("123456789012", "identity-center-instance");
        assert_ne!(client_token(&c, 0, None), client_token(&d, 0, None));
    }

    #[test]
    fn a_salt_separates_item_lifetimes_and_no_salt_keeps_the_old_token() {
        let key = StepKey::account("123456789012", "identity-center-instance");
        let revision = crate::revision::Revision::parse("2026-01-01T00:00:00.000Z#e");
        let (a, b) = (new_salt(), new_salt());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        // A new item's generation 0 never has a deleted item's token.
        assert_ne!(
            client_token(&key, 0, Some(&a)),
            client_token(&key, 0, Some(&b))
        );
        assert_ne!(client_token(&key, 0, Some(&a)), client_token(&key, 0, None));
        assert_ne!(
            client_token(&key, 0, Some(&a)),
            client_token(&key, 1, Some(&a))
        );
        assert_ne!(
            update_token(&key, 0, revision.as_str(), Some(&a)),
            update_token(&key, 0, revision.as_str(), Some(&b))
        );
        // A create and an update never share a token.
        assert_ne!(
            update_token(&key, 0, revision.as_str(), Some(&a)),
            client_token(&key, 0, Some(&a))
        );
        // Without a salt: exactly the tokens items written before salts were given
        // (computed independently with Python's uuid.uuid5).
        assert_eq!(
            client_token(&key, 0, None),
            "65d4c74c-3437-5006-bb96-154c53f941c5"
        );
        assert_eq!(
            update_token(&key, 0, revision.as_str(), None),
            Uuid::new_v5(
                &TOKEN_NAMESPACE,
                br#"["account#123456789012","identity-center-instance",0,"2026-01-01T00:00:00.000Z#e"]"#
            )
            .hyphenated()
            .to_string()
        );
    }

    #[test]
    fn a_call_token_is_bound_to_the_call_and_its_exact_parameters() {
        let update = "u";
        let tags = serde_json::json!({"a": "1", "b": "2"});
        let same_reordered = serde_json::json!({"b": "2", "a": "1"});
        assert_eq!(
            call_token(update, "TagResource", &tags),
            call_token(update, "TagResource", &same_reordered)
        );
        assert_ne!(
            call_token(update, "TagResource", &tags),
            call_token(update, "TagResource", &serde_json::json!({"a": "1"}))
        );
        assert_ne!(
            call_token(update, "TagResource", &tags),
            call_token(update, "UpdateIdentityProvider", &tags)
        );
        assert_ne!(
            call_token(update, "TagResource", &tags),
            call_token("v", "TagResource", &tags)
        );
    }
}
