//! The project's own `Account Onboarding Requested` event, detail schema version "1".

use super::json::{kind, Fields};
use super::limits::{self, MAX_INSTANCE_TAGS, MAX_PROVIDER_TAGS};
use super::provider::ProviderType;
use super::{
    DecodeError, Decoded, Envelope, InstanceSpec, OnboardingRequest, Origin,
    WebIdentityProviderSpec, SCHEMA_VERSION,
};

const DETAIL_FIELDS: &[&str] = &[
    "schemaVersion",
    "accountId",
    "accountName",
    "identityCenterInstance",
    "webIdentityProvider",
];
const INSTANCE_FIELDS: &[&str] = &["name", "tags"];
const PROVIDER_FIELDS: &[&str] = &[
    "portalArn",
    "providerName",
    "providerType",
    "details",
    "secretId",
    "tags",
];

pub(crate) fn decode(envelope: &Envelope<'_>) -> Result<Decoded, DecodeError> {
    let detail = envelope.detail;
    // The version first: a newer schema's fields must not be reported as unknown.
    schema_version(detail)?;
    detail.deny_unknown(DETAIL_FIELDS)?;
    let account_id = limits::account_id(&detail.at("accountId"), detail.req_str("accountId")?)?;
    let account_name = detail
        .opt_str("accountName")?
        .map(|s| limits::account_name(&detail.at("accountName"), s))
        .transpose()?;
    let instance = match detail.get("identityCenterInstance") {
        None => InstanceSpec::default(),
        Some(v) => instance(Fields::of(v, &detail.at("identityCenterInstance"))?)?,
    };
    let web_identity_provider = match detail.get("webIdentityProvider") {
        None => None,
        Some(v) => Some(provider(Fields::of(v, &detail.at("webIdentityProvider"))?)?),
    };
    Ok(Decoded::Request(OnboardingRequest {
        event_id: envelope.id.to_owned(),
        origin: Origin::OnboardingRequested,
        replay_name: envelope.replay_name.map(str::to_owned),
        time: envelope.time.map(str::to_owned),
        account_id,
        account_name,
        instance,
        web_identity_provider,
    }))
}

fn schema_version(detail: Fields<'_>) -> Result<(), DecodeError> {
    let at = detail.at("schemaVersion");
    match detail.map().get("schemaVersion") {
        None => Err(DecodeError::new(format!(
            "{at}: missing (expected {SCHEMA_VERSION:?})"
        ))),
        Some(serde_json::Value::String(v)) if v == SCHEMA_VERSION => Ok(()),
        Some(serde_json::Value::String(v)) => Err(DecodeError::new(format!(
            "{at}: unsupported schemaVersion {} (this version reads {SCHEMA_VERSION:?})",
            super::json::echo(v)
        ))),
        Some(other) => Err(DecodeError::new(format!(
            "{at}: expected the string {SCHEMA_VERSION:?}, got {}",
            kind(other)
        ))),
    }
}

fn instance(fields: Fields<'_>) -> Result<InstanceSpec, DecodeError> {
    fields.deny_unknown(INSTANCE_FIELDS)?;
    let name = fields
        .opt_str("name")?
        .map(|s| limits::instance_name(&fields.at("name"), s))
        .transpose()?;
    let (tags, removed_tags) = match fields.get("tags") {
        None => Default::default(),
        Some(v) => limits::tags(&fields.at("tags"), v, MAX_INSTANCE_TAGS)?,
    };
    Ok(InstanceSpec {
        name,
        tags,
        removed_tags,
    })
}

fn provider(fields: Fields<'_>) -> Result<WebIdentityProviderSpec, DecodeError> {
    fields.deny_unknown(PROVIDER_FIELDS)?;
    let details_at = fields.at("details");
    let details = Fields::of(fields.req("details")?, &details_at)?;
    // A secret in the details is the worst mistake an event can carry: report it first.
    if let Some(key) = details.map().keys().find(|k| super::json::is_secret_key(k)) {
        return Err(super::json::secret_in_event(&details.at(key)));
    }
    let portal_arn = fields.req_str("portalArn")?;
    let portal_account_id = limits::portal_arn(&fields.at("portalArn"), portal_arn)?;
    let provider_name =
        limits::provider_name(&fields.at("providerName"), fields.req_str("providerName")?)?;
    let provider_type: ProviderType =
        fields
            .req_str("providerType")?
            .parse()
            .map_err(|e: DecodeError| {
                DecodeError::new(format!("{}: {}", fields.at("providerType"), e.reason))
            })?;
    let details = limits::details(details, provider_type)?;
    let secret_id = fields
        .opt_str("secretId")?
        .map(|s| limits::secret_id(&fields.at("secretId"), s))
        .transpose()?;
    match (&secret_id, provider_type.secret_keys()) {
        (None, keys) if !keys.is_empty() => {
            return Err(DecodeError::new(format!(
                "{}: missing; {provider_type} providers read {} from a Secrets Manager secret named here",
                fields.at("secretId"),
                keys.join(", ")
            )))
        }
        (Some(_), []) => {
            return Err(DecodeError::new(format!(
                "{}: {provider_type} providers take no secret; remove secretId",
                fields.at("secretId")
            )))
        }
        _ => {}
    }
    let (tags, removed_tags) = match fields.get("tags") {
        None => Default::default(),
        Some(v) => limits::tags(&fields.at("tags"), v, MAX_PROVIDER_TAGS)?,
    };
    Ok(WebIdentityProviderSpec {
        portal_arn: portal_arn.to_owned(),
        portal_account_id,
        provider_name,
        provider_type,
        details,
        secret_id,
        tags,
        removed_tags,
    })
}
