//! A WorkSpaces Web identity provider on the account's portal (workspaces-web
//! CreateIdentityProvider), in the portal's account and Region; ready on creation.
//!
//! Secret provider details (`client_secret`, `private_key`) are read from Secrets Manager at
//! create time only: they never enter the request hash, the ledger, logs or events.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_workspacesweb::types::{AuthenticationType, IdentityProviderType, Tag};
use aws_sdk_workspacesweb::Client;
use serde_json::json;

use super::project_tags::{self, TAGS};
use crate::aws::MemberAccess;
use crate::error::StepError;
use crate::events::ProviderType;
use crate::events::{OnboardingRequest, WebIdentityProviderSpec};
use crate::ledger::{call_token, StepKey};
use crate::rebuild::{map, text};
use crate::step::{Existing, Fields, Plan, Readiness, Step};

const TYPE: &str = "type";
const DETAILS: &str = "details";
const SECRET_ID: &str = "secretId";

/// The fields a provider request specifies: its type and non-secret details always, the
/// secret's name when the type has one, each tag it sets or removes.
fn desired(spec: &WebIdentityProviderSpec) -> Fields {
    let mut fields = Fields::new();
    fields.insert(TYPE.into(), json!(spec.provider_type.as_str()));
    fields.insert(DETAILS.into(), json!(spec.details));
    if let Some(secret) = &spec.secret_id {
        fields.insert(SECRET_ID.into(), json!(secret));
    }
    if let Some(tags) = project_tags::asked(&spec.tags, &spec.removed_tags) {
        fields.insert(TAGS.into(), tags);
    }
    fields
}

pub struct WebIdentityProvider {
    access: MemberAccess,
    secrets: aws_sdk_secretsmanager::Client,
    /// Secrets read in this invocation, by name: one GetSecretValue per secret per batch.
    /// Dropped at the start of every invocation, never logged.
    /// Held while a secret is read, so concurrent records of a batch wait for one read.
    read: tokio::sync::Mutex<HashMap<String, HashMap<String, String>>>,
}

pub struct Input {
    spec: WebIdentityProviderSpec,
    region: String,
}

impl WebIdentityProvider {
    /// `secrets` reads the provider secrets in the automation's own account.
    pub fn new(access: MemberAccess, secrets: aws_sdk_secretsmanager::Client) -> Self {
        Self {
            access,
            secrets,
            read: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The secret's JSON object of strings, read once per invocation.
    async fn secret_values(&self, secret_id: &str) -> Result<HashMap<String, String>, StepError> {
        let mut read = self.read.lock().await;
        if let Some(values) = read.get(secret_id) {
            return Ok(values.clone());
        }
        let out = self
            .secrets
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| {
                StepError::from_sdk(&format!("secretsmanager GetSecretValue {secret_id}"), e)
            })?;
        let invalid = || {
            StepError::permanent(
                "InvalidSecret",
                format!("secret {secret_id} must be a JSON object of strings"),
            )
        };
        let values: HashMap<String, String> =
            serde_json::from_str(out.secret_string().ok_or_else(invalid)?)
                .map_err(|_| invalid())?;
        read.insert(secret_id.to_string(), values.clone());
        Ok(values)
    }

    /// The secret values the provider type needs, checked for presence; never logged.
    async fn secret_details(
        &self,
        spec: &WebIdentityProviderSpec,
    ) -> Result<HashMap<String, String>, StepError> {
        self.secrets_of(spec.provider_type, spec.secret_id.as_deref())
            .await
    }

    async fn secrets_of(
        &self,
        provider_type: ProviderType,
        secret_id: Option<&str>,
    ) -> Result<HashMap<String, String>, StepError> {
        let needed = provider_type.secret_keys();
        if needed.is_empty() {
            return Ok(HashMap::new());
        }
        let secret_id = secret_id.ok_or_else(|| {
            StepError::permanent(
                "MissingSecret",
                format!(
                    "a {} provider needs secretId naming its {:?}",
                    provider_type.as_str(),
                    needed
                ),
            )
        })?;
        let values = self.secret_values(secret_id).await.map_err(|e| {
            if e.code() == "InvalidSecret" {
                StepError::permanent(
                    "InvalidSecret",
                    format!(
                        "secret {secret_id} must be a JSON object of strings holding {needed:?}"
                    ),
                )
            } else {
                e
            }
        })?;
        let mut details = HashMap::new();
        for key in needed {
            let value = values.get(*key).filter(|v| !v.is_empty()).ok_or_else(|| {
                StepError::permanent("InvalidSecret", format!("secret {secret_id} has no {key}"))
            })?;
            details.insert(key.to_string(), value.clone());
        }
        Ok(details)
    }
}

impl Step for WebIdentityProvider {
    const NAME: &'static str = "web-identity-provider";
    const READY_DETAIL_TYPE: &'static str = "Web Identity Provider Ready";
    const UPDATED_DETAIL_TYPE: &'static str = "Web Identity Provider Updated";
    const UNOBSERVABLE: &'static [&'static str] = &[SECRET_ID];
    type Input = Input;
    type Api = Client;

    fn plan(&self, request: &OnboardingRequest) -> Result<Plan<Input>, String> {
        let spec = request
            .web_identity_provider
            .as_ref()
            .ok_or("the request names no portal identity provider")?;
        // arn:aws:workspaces-web:<region>:<account>:portal/<id>, validated by the decoder.
        let region = spec
            .portal_arn
            .split(':')
            .nth(3)
            .filter(|r| !r.is_empty())
            .ok_or("the portal ARN names no Region")?
            .to_string();
        Ok(Plan {
            key: StepKey::account(
                &spec.portal_account_id,
                &format!("{}#{}#{}", Self::NAME, spec.portal_arn, spec.provider_name),
            ),
            account_id: Some(spec.portal_account_id.clone()),
            canonical: json!({
                "portalArn": spec.portal_arn,
                "providerName": spec.provider_name,
                "providerType": spec.provider_type.as_str(),
                "details": spec.details,
                // The secret's name, not its value or version: a rotated secret is the same
                // request, and a replay after a rotation stays a duplicate.
                "secretId": spec.secret_id,
                "tags": spec.tags,
            }),
            desired: desired(spec),
            input: Input {
                spec: spec.clone(),
                region,
            },
        })
    }

    /// The portal and the provider's name from the key, the rest from the recorded fields.
    fn request_from(
        key: &StepKey,
        fields: &Fields,
        mut request: OnboardingRequest,
    ) -> Result<OnboardingRequest, String> {
        let (portal, name) = portal_and_provider(key)?;
        let provider_type = text(fields, TYPE)
            .and_then(|t| t.parse().ok())
            .ok_or("the ledger holds no provider type for it (claimed by an older version)")?;
        let (tags, removed_tags) = project_tags::split(fields);
        request.web_identity_provider = Some(WebIdentityProviderSpec {
            portal_arn: portal.to_string(),
            portal_account_id: request.account_id.clone(),
            provider_name: name.to_string(),
            provider_type,
            details: map(fields, DETAILS),
            secret_id: text(fields, SECRET_ID),
            tags,
            removed_tags,
        });
        Ok(request)
    }

    async fn connect(&self, input: &Input) -> Result<Client, StepError> {
        let config = self
            .access
            .config_for(&input.spec.portal_account_id, Some(&input.region))
            .await?;
        Ok(Client::new(&config))
    }

    /// A provider of the requested name on the portal. A name proves nothing (another team
    /// may use it): adoptable only when its type and every non-secret detail the request
    /// gives are equal, that is, provably what was asked (our own lost create is exactly
    /// that). Anything else is a `ForeignResourceConflict`, never adopted.
    async fn lookup(&self, api: &Client, input: &Input) -> Result<Option<Existing>, StepError> {
        let mut pages = api
            .list_identity_providers()
            .portal_arn(&input.spec.portal_arn)
            .into_paginator()
            .send();
        let mut found = None;
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| StepError::from_sdk("workspaces-web ListIdentityProviders", e))?;
            found = page
                .identity_providers()
                .iter()
                .find(|p| p.identity_provider_name() == Some(input.spec.provider_name.as_str()))
                .map(|p| p.identity_provider_arn().to_string());
            if found.is_some() {
                break;
            }
        }
        let Some(arn) = found else { return Ok(None) };
        let out = api
            .get_identity_provider()
            .identity_provider_arn(&arn)
            .send()
            .await
            .map_err(|e| StepError::from_sdk("workspaces-web GetIdentityProvider", e))?;
        let provider = out.identity_provider();
        let spec = &input.spec;
        let type_now = provider
            .and_then(|p| p.identity_provider_type())
            .map(|t| t.as_str());
        let details = provider.and_then(|p| p.identity_provider_details());
        let differing: Vec<&str> = spec
            .details
            .iter()
            .filter(|(k, v)| details.and_then(|d| d.get(k.as_str())) != Some(*v))
            .map(|(k, _)| k.as_str())
            .collect();
        if type_now == Some(spec.provider_type.as_str()) && differing.is_empty() {
            return Ok(Some(Existing::Matches {
                arn,
                created_at: None,
            }));
        }
        let what = if type_now != Some(spec.provider_type.as_str()) {
            format!(
                "its type is {} (requested {})",
                type_now.unwrap_or("unknown"),
                spec.provider_type.as_str()
            )
        } else {
            format!("its {} differ from the request", differing.join(", "))
        };
        Ok(Some(Existing::Conflicts(StepError::permanent(
            "ForeignResourceConflict",
            format!(
                "portal {} already has an identity provider named {:?} ({arn}) that this \
                 onboarding did not make: {what}. Rename the requested provider, or remove or \
                 align the existing one, then `onboarding retry`",
                spec.portal_arn, spec.provider_name
            ),
        ))))
    }

    /// Reads the portal first (GetPortal, only here: a duplicate makes no call): a portal
    /// whose users come from IAM Identity Center takes no provider, and one sent anyway is
    /// refused before the secret is read or anything is made.
    async fn create(
        &self,
        api: &Client,
        input: &Input,
        client_token: &str,
    ) -> Result<String, StepError> {
        let spec = &input.spec;
        let portal = api
            .get_portal()
            .portal_arn(&spec.portal_arn)
            .send()
            .await
            .map_err(|e| StepError::from_sdk("workspaces-web GetPortal", e))?;
        let authentication = portal.portal().and_then(|p| p.authentication_type());
        if let Some(refusal) = takes_no_provider(&spec.portal_arn, authentication) {
            return Err(refusal);
        }
        let mut details: HashMap<String, String> = spec.details.clone().into_iter().collect();
        details.extend(self.secret_details(spec).await?);
        let out = api
            .create_identity_provider()
            .portal_arn(&spec.portal_arn)
            .identity_provider_name(&spec.provider_name)
            .identity_provider_type(IdentityProviderType::from(spec.provider_type.as_str()))
            .set_identity_provider_details(Some(details))
            .set_tags(tags(&spec.tags)?)
            .client_token(client_token)
            .send()
            .await
            .map_err(|e| StepError::from_sdk("workspaces-web CreateIdentityProvider", e))?;
        Ok(out.identity_provider_arn().to_string())
    }

    /// Type and non-secret details (GetIdentityProvider) and the values of the tag keys the
    /// project set or wants (ListTagsForResource). The secret's name cannot be read back: it
    /// is left out, so a changed secret is always sent.
    async fn current(
        &self,
        api: &Client,
        _input: &Input,
        arn: &str,
        applied: &Fields,
        wanted: &Fields,
    ) -> Result<Fields, StepError> {
        let out = api
            .get_identity_provider()
            .identity_provider_arn(arn)
            .send()
            .await
            .map_err(|e| StepError::from_sdk("workspaces-web GetIdentityProvider", e))?;
        let mut now = Fields::new();
        if let Some(provider) = out.identity_provider() {
            let provider_type = provider
                .identity_provider_type()
                .map(|t| t.as_str().to_string());
            if let Some(t) = &provider_type {
                now.insert(TYPE.into(), json!(t));
            }
            let secret = provider_type
                .as_deref()
                .and_then(|t| t.parse::<ProviderType>().ok())
                .map(|t| t.secret_keys())
                .unwrap_or_default();
            let details: BTreeMap<&String, &String> = provider
                .identity_provider_details()
                .map(|d| {
                    d.iter()
                        .filter(|(k, _)| !secret.contains(&k.as_str()))
                        .collect()
                })
                .unwrap_or_default();
            now.insert(DETAILS.into(), json!(details));
        }
        let ours = project_tags::keys_of(applied, wanted);
        if !ours.is_empty() {
            let out = api
                .list_tags_for_resource()
                .resource_arn(arn)
                .send()
                .await
                .map_err(|e| StepError::from_sdk("workspaces-web ListTagsForResource", e))?;
            let tags: BTreeMap<&str, &str> = out
                .tags()
                .iter()
                .filter(|t| ours.contains(t.key()))
                .map(|t| (t.key(), t.value()))
                .collect();
            if !tags.is_empty() {
                now.insert(TAGS.into(), json!(tags));
            }
        }
        Ok(now)
    }

    /// Type, details and secret through UpdateIdentityProvider (the whole details map, the
    /// secret read again from Secrets Manager); the project's tags through TagResource /
    /// UntagResource. Each call's ClientToken is the update's bound to that call's exact
    /// parameters (the secret by its name, never its value). The provider's name is part of the step's
    /// key: another name is another provider.
    async fn update(
        &self,
        api: &Client,
        _input: &Input,
        arn: &str,
        applied: &Fields,
        wanted: &Fields,
        token: &str,
    ) -> Result<(), StepError> {
        let provider_changed = [TYPE, DETAILS, SECRET_ID]
            .iter()
            .any(|f| applied.get(*f) != wanted.get(*f));
        if provider_changed {
            let provider_type: ProviderType = wanted
                .get(TYPE)
                .and_then(|v| v.as_str())
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| {
                    StepError::permanent("InvalidState", "the wanted state names no provider type")
                })?;
            let mut details: HashMap<String, String> = wanted
                .get(DETAILS)
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            let secret_id = wanted.get(SECRET_ID).and_then(|v| v.as_str());
            let call = call_token(
                token,
                "UpdateIdentityProvider",
                &json!({"type": provider_type.as_str(), "details": details, SECRET_ID: secret_id}),
            );
            details.extend(self.secrets_of(provider_type, secret_id).await?);
            api.update_identity_provider()
                .identity_provider_arn(arn)
                .identity_provider_type(IdentityProviderType::from(provider_type.as_str()))
                .set_identity_provider_details(Some(details))
                .client_token(call)
                .send()
                .await
                .map_err(|e| StepError::from_sdk("workspaces-web UpdateIdentityProvider", e))?;
        }
        let tags = project_tags::change(applied, wanted);
        if !tags.remove.is_empty() {
            api.untag_resource()
                .resource_arn(arn)
                .set_tag_keys(Some(tags.remove))
                .send()
                .await
                .map_err(|e| StepError::from_sdk("workspaces-web UntagResource", e))?;
        }
        if !tags.set.is_empty() {
            api.tag_resource()
                .resource_arn(arn)
                .set_tags(self::tags(&tags.set)?)
                .client_token(call_token(token, "TagResource", &json!(tags.set)))
                .send()
                .await
                .map_err(|e| StepError::from_sdk("workspaces-web TagResource", e))?;
        }
        Ok(())
    }

    /// Ready on creation; called only by the drift audit, to find a provider deleted
    /// behind the project's back.
    fn begin_invocation(&self) {
        // An invocation starts with nothing in flight: the lock is free.
        if let Ok(mut read) = self.read.try_lock() {
            read.clear();
        }
    }

    async fn readiness(&self, api: &Client, arn: &str) -> Result<Readiness, StepError> {
        api.get_identity_provider()
            .identity_provider_arn(arn)
            .send()
            .await
            .map_err(|e| StepError::from_sdk("workspaces-web GetIdentityProvider", e))?;
        Ok(Readiness::Ready)
    }

    fn ready_on_create(&self) -> bool {
        true
    }
}

/// The portal ARN and the provider name of a step key `web-identity-provider#<portal>#<name>`.
/// An ARN holds no `#` and a provider name may: the portal ends at the first `#`.
fn portal_and_provider(key: &StepKey) -> Result<(&str, &str), String> {
    let rest = key
        .step
        .strip_prefix(WebIdentityProvider::NAME)
        .and_then(|r| r.strip_prefix('#'))
        .ok_or("the step key names no portal")?;
    Ok(rest
        .split_once('#')
        .ok_or("the step key names no provider")?)
}

/// The permanent refusal of a provider for a portal that takes none: an
/// `IAM_Identity_Center` portal (its users come from IAM Identity Center). A portal without
/// the field is `Standard`, the service's default.
fn takes_no_provider(
    portal_arn: &str,
    authentication: Option<&AuthenticationType>,
) -> Option<StepError> {
    // A type this client does not know yet is the service's to judge.
    let kind = authentication.filter(|a| **a == AuthenticationType::IamIdentityCenter)?;
    Some(StepError::permanent(
        "PortalTakesNoProvider",
        format!(
            "portal {portal_arn} has authenticationType {}: IAM_Identity_Center portals take \
             their users from IAM Identity Center and need no identity provider. Nothing was \
             created; send no webIdentityProvider for this portal (assign its users and groups \
             in IAM Identity Center), or name a Standard portal",
            kind.as_str()
        ),
    ))
}

fn tags(tags: &BTreeMap<String, String>) -> Result<Option<Vec<Tag>>, StepError> {
    if tags.is_empty() {
        return Ok(None);
    }
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
        .map_err(|e| StepError::permanent("InvalidTag", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORTAL: &str =
        "arn:aws:workspaces-web:us-east-1:222222222222:portal/0d5e1c8a-3b7f-4e2a-9c6d-1f2e3a4b5c6d";

    #[test]
    fn a_rebuilt_request_keeps_a_provider_name_with_a_hash() {
        let key = StepKey::account(
            "222222222222",
            &format!("{}#{PORTAL}#corp#idp", WebIdentityProvider::NAME),
        );
        let fields: Fields = [(TYPE.to_owned(), json!("OIDC"))].into_iter().collect();
        let revision = crate::revision::Revision::parse("2026-11-30T12:00:00.000Z#e");
        let request = crate::rebuild::request_from::<WebIdentityProvider>(&key, &fields, &revision)
            .expect("rebuilt");
        let spec = request.web_identity_provider.expect("a provider");
        assert_eq!(spec.portal_arn, PORTAL);
        assert_eq!(spec.provider_name, "corp#idp");
        assert_eq!(spec.portal_account_id, "222222222222");
        assert_eq!(request.event_id, "e");

        let no_provider = StepKey::account(
            "222222222222",
            &format!("{}#{PORTAL}", WebIdentityProvider::NAME),
        );
        assert_eq!(
            portal_and_provider(&no_provider).unwrap_err(),
            "the step key names no provider"
        );
    }

    #[test]
    fn identity_center_portals_take_no_provider() {
        let e = takes_no_provider(PORTAL, Some(&AuthenticationType::IamIdentityCenter))
            .expect("refused");
        assert_eq!(e.code(), "PortalTakesNoProvider");
        assert!(!e.is_retryable());
        let message = &e.reason().message;
        for needle in [
            PORTAL,
            "IAM_Identity_Center",
            "from IAM Identity Center",
            "send no webIdentityProvider",
        ] {
            assert!(message.contains(needle), "{needle:?} in {message}");
        }
        assert_eq!(
            takes_no_provider(PORTAL, Some(&AuthenticationType::Standard)),
            None
        );
        assert_eq!(takes_no_provider(PORTAL, None), None, "Standard by default");
    }
}
