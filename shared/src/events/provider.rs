//! Identity provider types of WorkSpaces Web and the `identityProviderDetails` keys each takes
//! (from the `CreateIdentityProvider` documentation in the workspaces-web model).

use std::fmt;
use std::str::FromStr;

use super::DecodeError;

/// `identityProviderType` of WorkSpaces Web. Serializes as the API value (`"SAML"`, `"OIDC"`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ProviderType {
    #[serde(rename = "SAML")]
    Saml,
    #[serde(rename = "Facebook")]
    Facebook,
    #[serde(rename = "Google")]
    Google,
    #[serde(rename = "LoginWithAmazon")]
    LoginWithAmazon,
    #[serde(rename = "SignInWithApple")]
    SignInWithApple,
    #[serde(rename = "OIDC")]
    Oidc,
}

impl ProviderType {
    /// Every type, in the model's order.
    pub const ALL: [ProviderType; 6] = [
        ProviderType::Saml,
        ProviderType::Facebook,
        ProviderType::Google,
        ProviderType::LoginWithAmazon,
        ProviderType::SignInWithApple,
        ProviderType::Oidc,
    ];

    /// The API value.
    pub fn as_str(&self) -> &'static str {
        match self {
            ProviderType::Saml => "SAML",
            ProviderType::Facebook => "Facebook",
            ProviderType::Google => "Google",
            ProviderType::LoginWithAmazon => "LoginWithAmazon",
            ProviderType::SignInWithApple => "SignInWithApple",
            ProviderType::Oidc => "OIDC",
        }
    }

    /// Detail keys whose values are secrets: they must come from the Secrets Manager secret
    /// named by `secretId` (a JSON object holding these keys), never from the event.
    pub fn secret_keys(&self) -> &'static [&'static str] {
        match self {
            ProviderType::Oidc
            | ProviderType::Google
            | ProviderType::Facebook
            | ProviderType::LoginWithAmazon => &["client_secret"],
            ProviderType::SignInWithApple => &["private_key"],
            ProviderType::Saml => &[],
        }
    }

    /// Non-secret detail keys the event must supply for this type.
    ///
    /// SAML lists none here because it needs exactly one of `MetadataFile` / `MetadataURL`
    /// (checked by the decoder). Facebook's `api_version` is accepted but not required: the
    /// service falls back to its default Graph API version.
    pub fn required_details(&self) -> &'static [&'static str] {
        match self {
            ProviderType::Google | ProviderType::LoginWithAmazon | ProviderType::Facebook => {
                &["client_id", "authorize_scopes"]
            }
            ProviderType::SignInWithApple => {
                &["client_id", "team_id", "key_id", "authorize_scopes"]
            }
            ProviderType::Oidc => &[
                "client_id",
                "attributes_request_method",
                "oidc_issuer",
                "authorize_scopes",
            ],
            ProviderType::Saml => &[],
        }
    }

    /// Every non-secret detail key the event may supply for this type (required + optional).
    pub fn allowed_details(&self) -> &'static [&'static str] {
        match self {
            ProviderType::Google | ProviderType::LoginWithAmazon => {
                &["client_id", "authorize_scopes"]
            }
            ProviderType::Facebook => &["client_id", "authorize_scopes", "api_version"],
            ProviderType::SignInWithApple => {
                &["client_id", "team_id", "key_id", "authorize_scopes"]
            }
            ProviderType::Oidc => &[
                "client_id",
                "attributes_request_method",
                "oidc_issuer",
                "authorize_scopes",
                "authorize_url",
                "token_url",
                "attributes_url",
                "jwks_uri",
            ],
            ProviderType::Saml => &[
                "MetadataFile",
                "MetadataURL",
                "IDPSignout",
                "IDPInit",
                "RequestSigningAlgorithm",
                "EncryptedResponses",
            ],
        }
    }
}

impl fmt::Display for ProviderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderType {
    type Err = DecodeError;

    /// Exact API values only (the API is case-sensitive); a near miss gets a hint.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(t) = ProviderType::ALL.iter().find(|t| t.as_str() == s) {
            return Ok(*t);
        }
        let expected =
            "expected one of SAML, Facebook, Google, LoginWithAmazon, SignInWithApple, OIDC";
        let reason = match ProviderType::ALL
            .iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
        {
            Some(t) => format!(
                "unknown provider type {} ({expected}; did you mean \"{t}\"?)",
                super::json::echo(s)
            ),
            None => format!(
                "unknown provider type {} ({expected})",
                super::json::echo(s)
            ),
        };
        Err(DecodeError::new(reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_values_round_trip() {
        for t in ProviderType::ALL {
            assert_eq!(t.as_str().parse::<ProviderType>(), Ok(t));
            assert_eq!(
                serde_json::to_value(t).unwrap(),
                serde_json::Value::String(t.as_str().to_owned())
            );
        }
    }

    #[test]
    fn unknown_types_are_refused_with_a_hint() {
        let e = "oidc".parse::<ProviderType>().unwrap_err();
        assert!(e.reason.contains("did you mean \"OIDC\""), "{e}");
        let e = "LDAP".parse::<ProviderType>().unwrap_err();
        assert!(e.reason.contains("unknown provider type \"LDAP\""), "{e}");
    }

    #[test]
    fn secrets_are_never_allowed_details() {
        for t in ProviderType::ALL {
            for k in t.secret_keys() {
                assert!(!t.allowed_details().contains(k));
            }
            for k in t.required_details() {
                assert!(t.allowed_details().contains(k), "{t} {k}");
            }
        }
        assert_eq!(ProviderType::Oidc.secret_keys(), ["client_secret"]);
        assert_eq!(ProviderType::SignInWithApple.secret_keys(), ["private_key"]);
        assert!(ProviderType::Saml.secret_keys().is_empty());
    }
}
