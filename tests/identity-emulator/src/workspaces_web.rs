//! WorkSpaces Web (restJson1, camelCase): portals and their identity providers, their
//! updates and tags. Identity providers live only on an existing portal of the calling
//! account; their details are checked per provider type and never echoed in errors or the
//! state dump; tags (`@sensitive` in the model) are shown by key only.

use serde_json::{json, Map, Value};

use crate::config::{IAM_IDENTITY_CENTER, STANDARD};
use crate::ids;
use crate::protocol::{Output, ServiceError};
use crate::state::{page, Caller, IdentityProvider, Portal, Tags, TokenCheck, World};
use crate::tagging;

pub(crate) fn execute(
    world: &mut World,
    caller: &Caller,
    operation: &str,
    input: &Value,
) -> Result<Output, ServiceError> {
    let out = match operation {
        "CreatePortal" => create_portal(world, caller, input)?,
        "GetPortal" => get_portal(world, caller, input)?,
        "CreateIdentityProvider" => create_identity_provider(world, caller, input)?,
        "GetIdentityProvider" => get_identity_provider(world, caller, input)?,
        "ListIdentityProviders" => list_identity_providers(world, caller, input)?,
        "DeleteIdentityProvider" => delete_identity_provider(world, caller, input)?,
        "UpdateIdentityProvider" => update_identity_provider(world, caller, input)?,
        "TagResource" => tag_resource(world, caller, input)?,
        "UntagResource" => untag_resource(world, caller, input)?,
        "ListTagsForResource" => list_tags(world, caller, input)?,
        _ => {
            return Err(ServiceError::unknown_operation(format!(
                "Unknown operation {operation}"
            )))
        }
    };
    Ok(Output::Json(out))
}

fn str_member<'a>(input: &'a Value, name: &str) -> Option<&'a str> {
    input.get(name).and_then(Value::as_str)
}

/// The input without its client token: what a replay must repeat exactly.
fn parameters(input: &Value) -> Value {
    let mut p = input.as_object().cloned().unwrap_or_default();
    p.remove("clientToken");
    Value::Object(p)
}

const MISMATCH: &str =
    "The clientToken was already used with different parameters (IdempotentParameterMismatch).";

fn mismatch() -> ServiceError {
    // Both creates model ConflictException; a reused token with other parameters is one.
    ServiceError::conflict(MISMATCH)
}

/// `UpdateIdentityProvider` and `TagResource` model no ConflictException: a reused token
/// with other parameters is invalid input there.
fn update_mismatch() -> ServiceError {
    ServiceError::validation(MISMATCH)
}

/// A field error in WorkSpaces Web's format; `message` never holds a value.
fn field_error(field: &str, message: impl Into<String>) -> ServiceError {
    let message = message.into();
    ServiceError::validation(format!("1 validation error detected: {message}"))
        .with("reason", json!("fieldValidationFailed"))
        .with("fieldList", json!([{"name": field, "message": message}]))
}

/// The `tags` member of a create or `TagResource`, refusing reserved and duplicate keys.
fn tags_of(input: &Value) -> Result<Tags, ServiceError> {
    tagging::tag_list(input.get("tags")).map_err(|m| field_error("tags", m))
}

fn not_found(kind: &str, arn: &str) -> ServiceError {
    ServiceError::not_found(format!("{kind} {arn} not found."))
        .with("resourceId", json!(arn))
        .with(
            "resourceType",
            json!(kind.to_ascii_uppercase().replace(' ', "_")),
        )
}

fn create_portal(world: &mut World, caller: &Caller, input: &Value) -> Result<Value, ServiceError> {
    const OP: &str = "CreatePortal";
    let token = str_member(input, "clientToken");
    let params = parameters(input);
    match world.check_token(OP, &caller.account, token, &params) {
        TokenCheck::Replay(response) => {
            world.counters.count_create(OP, false);
            return Ok(response);
        }
        TokenCheck::Mismatch => return Err(mismatch()),
        TokenCheck::Fresh => {}
    }
    let tags = tags_of(input)?;
    let id = ids::uuid();
    let portal = Portal {
        arn: ids::portal_arn(&caller.region, &caller.account, &id),
        endpoint: format!("{id}.workspaces-web.com"),
        id,
        owner: caller.account.clone(),
        display_name: str_member(input, "displayName").map(str::to_string),
        authentication_type: str_member(input, "authenticationType")
            .unwrap_or(STANDARD)
            .to_string(),
        created: std::time::SystemTime::now(),
        tags,
    };
    let response = json!({"portalArn": portal.arn, "portalEndpoint": portal.endpoint});
    world.record(&portal.arn, OP, world.portal_state(&portal));
    world.portals.push(portal);
    world.remember_token(OP, &caller.account, token, params, &response);
    world.counters.count_create(OP, true);
    Ok(response)
}

fn own_portal<'a>(world: &'a World, caller: &Caller, arn: &str) -> Option<&'a Portal> {
    world
        .portals
        .iter()
        .find(|p| p.arn == arn && p.owner == caller.account)
}

fn get_portal(world: &World, caller: &Caller, input: &Value) -> Result<Value, ServiceError> {
    let arn = str_member(input, "portalArn").unwrap_or_default();
    let portal = own_portal(world, caller, arn).ok_or_else(|| not_found("Portal", arn))?;
    let has_idp = world
        .identity_providers
        .iter()
        .any(|i| i.portal_arn == portal.arn);
    let mut p = Map::new();
    p.insert("portalArn".into(), json!(portal.arn));
    p.insert("rendererType".into(), json!("AppStream"));
    p.insert("browserType".into(), json!("Chrome"));
    p.insert(
        "portalStatus".into(),
        json!(if has_idp { "Active" } else { "Incomplete" }),
    );
    p.insert("portalEndpoint".into(), json!(portal.endpoint));
    if let Some(name) = &portal.display_name {
        p.insert("displayName".into(), json!(name));
    }
    p.insert(
        "creationDate".into(),
        json!(ids::epoch_seconds(portal.created)),
    );
    p.insert(
        "authenticationType".into(),
        json!(portal.authentication_type),
    );
    Ok(json!({ "portal": p }))
}

/// Detail keys per provider type, from the model's documentation of
/// `identityProviderDetails`: (required, optional).
fn detail_keys(provider_type: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match provider_type {
        "Google" | "LoginWithAmazon" => (&["client_id", "client_secret", "authorize_scopes"], &[]),
        "Facebook" => (
            &["client_id", "client_secret", "authorize_scopes"],
            &["api_version"],
        ),
        "SignInWithApple" => (
            &[
                "client_id",
                "team_id",
                "key_id",
                "private_key",
                "authorize_scopes",
            ],
            &[],
        ),
        "OIDC" => (
            &[
                "client_id",
                "client_secret",
                "attributes_request_method",
                "oidc_issuer",
                "authorize_scopes",
            ],
            &["authorize_url", "token_url", "attributes_url", "jwks_uri"],
        ),
        "SAML" => (
            &[],
            &[
                "MetadataFile",
                "MetadataURL",
                "IDPSignout",
                "IDPInit",
                "RequestSigningAlgorithm",
                "EncryptedResponses",
            ],
        ),
        _ => (&[], &[]),
    }
}

/// Problems of `details` for `provider_type` as `(field, message)`; values never shown.
pub(crate) fn check_details(
    provider_type: &str,
    details: &Map<String, Value>,
) -> Vec<(String, String)> {
    let (required, optional) = detail_keys(provider_type);
    let mut problems = Vec::new();
    let field = |k: &str| format!("identityProviderDetails.{k}");
    let value = |k: &str| details.get(k).and_then(Value::as_str).unwrap_or_default();
    for key in required {
        if value(key).trim().is_empty() {
            problems.push((field(key), format!("{key} is required for {provider_type}")));
        }
    }
    for key in details.keys() {
        if !required.contains(&key.as_str()) && !optional.contains(&key.as_str()) {
            problems.push((
                field(key),
                format!("{key} is not a detail of {provider_type} identity providers"),
            ));
        }
    }
    match provider_type {
        "OIDC" => {
            let method = value("attributes_request_method");
            if !method.is_empty() && method != "GET" && method != "POST" {
                problems.push((
                    field("attributes_request_method"),
                    "attributes_request_method must be GET or POST".to_string(),
                ));
            }
            let issuer = value("oidc_issuer");
            if !issuer.is_empty() && !issuer.starts_with("https://") {
                problems.push((
                    field("oidc_issuer"),
                    "oidc_issuer must be an https URL".to_string(),
                ));
            }
        }
        "SAML" => {
            let file = !value("MetadataFile").is_empty();
            let url = !value("MetadataURL").is_empty();
            if file == url {
                problems.push((
                    field("MetadataFile"),
                    "exactly one of MetadataFile or MetadataURL is required for SAML".to_string(),
                ));
            }
            for key in ["IDPSignout", "IDPInit", "EncryptedResponses"] {
                let v = value(key);
                if details.contains_key(key) && v != "true" && v != "false" {
                    problems.push((field(key), format!("{key} must be true or false")));
                }
            }
            let alg = value("RequestSigningAlgorithm");
            if details.contains_key("RequestSigningAlgorithm") && alg != "rsa-sha256" {
                problems.push((
                    field("RequestSigningAlgorithm"),
                    "RequestSigningAlgorithm only accepts rsa-sha256".to_string(),
                ));
            }
        }
        _ => {}
    }
    problems
}

fn create_identity_provider(
    world: &mut World,
    caller: &Caller,
    input: &Value,
) -> Result<Value, ServiceError> {
    const OP: &str = "CreateIdentityProvider";
    let token = str_member(input, "clientToken");
    let params = parameters(input);
    match world.check_token(OP, &caller.account, token, &params) {
        TokenCheck::Replay(response) => {
            world.counters.count_create(OP, false);
            return Ok(response);
        }
        TokenCheck::Mismatch => return Err(mismatch()),
        TokenCheck::Fresh => {}
    }
    let portal_arn = str_member(input, "portalArn").unwrap_or_default();
    let provider_type = str_member(input, "identityProviderType").unwrap_or_default();
    let name = str_member(input, "identityProviderName").unwrap_or_default();
    let details = input
        .get("identityProviderDetails")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    details_valid(provider_type, &details)?;
    let tags = tags_of(input)?;
    let portal =
        own_portal(world, caller, portal_arn).ok_or_else(|| not_found("Portal", portal_arn))?;
    if portal.authentication_type == IAM_IDENTITY_CENTER {
        return Err(takes_no_provider(&portal.arn));
    }
    if let Some(existing) = world
        .identity_providers
        .iter()
        .find(|i| i.portal_arn == portal.arn && i.name == name)
    {
        return Err(ServiceError::conflict(
            "An identity provider with this name already exists on the portal.",
        )
        .with("resourceId", json!(existing.arn))
        .with("resourceType", json!("IDENTITY_PROVIDER")));
    }
    let (region, _, portal_id) = ids::parse_portal_arn(&portal.arn)
        .unwrap_or_else(|| (caller.region.clone(), String::new(), portal.id.clone()));
    let provider = IdentityProvider {
        arn: ids::identity_provider_arn(&region, &caller.account, &portal_id),
        portal_arn: portal.arn.clone(),
        owner: caller.account.clone(),
        name: name.to_string(),
        provider_type: provider_type.to_string(),
        details,
        seeded: false,
        tags,
    };
    let response = json!({ "identityProviderArn": provider.arn });
    world.record(&provider.arn, OP, world.provider_state(&provider));
    world.identity_providers.push(provider);
    world.remember_token(OP, &caller.account, token, params, &response);
    world.counters.count_create(OP, true);
    Ok(response)
}

/// `CreateIdentityProvider` on a portal whose users come from IAM Identity Center. AWS
/// documents only that such portals need no provider, not what it answers when sent one: the
/// emulator takes the harsher plausible answer, a `ValidationException` naming the
/// authentication type (never a success that leaves an unused provider behind; README).
fn takes_no_provider(portal_arn: &str) -> ServiceError {
    field_error(
        "portalArn",
        format!(
            "Portal {portal_arn} has authenticationType {IAM_IDENTITY_CENTER}: its users sign \
             in through IAM Identity Center, and it takes no identity provider."
        ),
    )
}

/// `details` fit `provider_type` (see [`check_details`]), else a `ValidationException`
/// listing every problem.
fn details_valid(provider_type: &str, details: &Map<String, Value>) -> Result<(), ServiceError> {
    let problems = check_details(provider_type, details);
    if !problems.is_empty() {
        let n = problems.len();
        let message = format!(
            "{n} validation error{} detected: {}",
            if n == 1 { "" } else { "s" },
            problems
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
        let fields: Vec<Value> = problems
            .iter()
            .map(|(f, m)| json!({"name": f, "message": m}))
            .collect();
        return Err(ServiceError::validation(message)
            .with("reason", json!("fieldValidationFailed"))
            .with("fieldList", Value::Array(fields)));
    }
    Ok(())
}

fn own_provider<'a>(
    world: &'a World,
    caller: &Caller,
    arn: &str,
) -> Option<(usize, &'a IdentityProvider)> {
    world
        .identity_providers
        .iter()
        .enumerate()
        .find(|(_, i)| i.arn == arn && i.owner == caller.account)
}

fn get_identity_provider(
    world: &World,
    caller: &Caller,
    input: &Value,
) -> Result<Value, ServiceError> {
    let arn = str_member(input, "identityProviderArn").unwrap_or_default();
    let (_, idp) =
        own_provider(world, caller, arn).ok_or_else(|| not_found("Identity provider", arn))?;
    Ok(provider_output(idp))
}

fn list_identity_providers(
    world: &World,
    caller: &Caller,
    input: &Value,
) -> Result<Value, ServiceError> {
    let portal_arn = str_member(input, "portalArn").unwrap_or_default();
    let size = input
        .get("maxResults")
        .and_then(Value::as_u64)
        .unwrap_or(10)
        .min(100) as usize;
    // ListIdentityProviders models no ResourceNotFoundException: an unknown portal has none.
    let on_portal: Vec<&IdentityProvider> = world
        .identity_providers
        .iter()
        .filter(|i| i.portal_arn == portal_arn && i.owner == caller.account)
        .collect();
    let (items, next) =
        page(&on_portal, str_member(input, "nextToken"), size).map_err(ServiceError::validation)?;
    let summaries: Vec<Value> = items
        .iter()
        .map(|i| {
            json!({
                "identityProviderArn": i.arn,
                "identityProviderName": i.name,
                "identityProviderType": i.provider_type,
            })
        })
        .collect();
    let mut out = Map::new();
    out.insert("identityProviders".into(), Value::Array(summaries));
    if let Some(next) = next {
        out.insert("nextToken".into(), json!(next));
    }
    Ok(Value::Object(out))
}

fn delete_identity_provider(
    world: &mut World,
    caller: &Caller,
    input: &Value,
) -> Result<Value, ServiceError> {
    let arn = str_member(input, "identityProviderArn").unwrap_or_default();
    // DeleteIdentityProvider is @idempotent and models no ResourceNotFoundException.
    if let Some((index, _)) = own_provider(world, caller, arn) {
        world.identity_providers.remove(index);
        world.record(arn, "DeleteIdentityProvider", json!({"deleted": true}));
    }
    Ok(json!({}))
}

/// The provider as `GetIdentityProvider` and `UpdateIdentityProvider` return it (details
/// included: only ever to the owner).
fn provider_output(idp: &IdentityProvider) -> Value {
    json!({
        "identityProvider": {
            "identityProviderArn": idp.arn,
            "identityProviderName": idp.name,
            "identityProviderType": idp.provider_type,
            "identityProviderDetails": idp.details,
        }
    })
}

/// Name, type and details each replace the stored value when given. Details are replaced
/// as a whole (never merged) and must fit the resulting type, so a type change needs new
/// details. A name another provider of the portal has is refused.
fn update_identity_provider(
    world: &mut World,
    caller: &Caller,
    input: &Value,
) -> Result<Value, ServiceError> {
    const OP: &str = "UpdateIdentityProvider";
    let token = str_member(input, "clientToken");
    let params = parameters(input);
    match world.check_token(OP, &caller.account, token, &params) {
        TokenCheck::Replay(response) => {
            world.counters.count_update(OP, false);
            return Ok(response);
        }
        TokenCheck::Mismatch => return Err(update_mismatch()),
        TokenCheck::Fresh => {}
    }
    let arn = str_member(input, "identityProviderArn").unwrap_or_default();
    let (index, idp) =
        own_provider(world, caller, arn).ok_or_else(|| not_found("Identity provider", arn))?;
    let name = str_member(input, "identityProviderName").unwrap_or(&idp.name);
    let provider_type = str_member(input, "identityProviderType").unwrap_or(&idp.provider_type);
    let details = match input
        .get("identityProviderDetails")
        .and_then(Value::as_object)
    {
        Some(d) => d.clone(),
        None => idp.details.clone(),
    };
    details_valid(provider_type, &details)?;
    let taken = world
        .identity_providers
        .iter()
        .any(|i| i.portal_arn == idp.portal_arn && i.arn != idp.arn && i.name == name);
    if taken {
        return Err(field_error(
            "identityProviderName",
            "Another identity provider of the portal already has this name.",
        ));
    }
    let (name, provider_type) = (name.to_string(), provider_type.to_string());
    let idp = &mut world.identity_providers[index];
    idp.name = name;
    idp.provider_type = provider_type;
    idp.details = details;
    let response = provider_output(idp);
    let state = world.provider_state(&world.identity_providers[index]);
    world.record(arn, OP, state);
    world.remember_token(OP, &caller.account, token, params, &response);
    world.counters.count_update(OP, true);
    Ok(response)
}

/// A taggable resource of the caller: one of its portals or identity providers.
enum Taggable {
    Portal(usize),
    Provider(usize),
}

fn taggable(world: &World, caller: &Caller, input: &Value) -> Result<Taggable, ServiceError> {
    let arn = str_member(input, "resourceArn").unwrap_or_default();
    if let Some(i) = world
        .portals
        .iter()
        .position(|p| p.arn == arn && p.owner == caller.account)
    {
        return Ok(Taggable::Portal(i));
    }
    if let Some((i, _)) = own_provider(world, caller, arn) {
        return Ok(Taggable::Provider(i));
    }
    Err(
        ServiceError::not_found(format!("Resource {arn} not found."))
            .with("resourceId", json!(arn)),
    )
}

/// Apply `change` to the tags of the resource and record its new state.
fn retag(
    world: &mut World,
    resource: Taggable,
    operation: &str,
    change: impl FnOnce(&Tags) -> Result<Tags, ServiceError>,
) -> Result<(), ServiceError> {
    let (arn, state) = match resource {
        Taggable::Portal(i) => {
            let tags = change(&world.portals[i].tags)?;
            world.portals[i].tags = tags;
            let p = &world.portals[i];
            (p.arn.clone(), world.portal_state(p))
        }
        Taggable::Provider(i) => {
            let tags = change(&world.identity_providers[i].tags)?;
            world.identity_providers[i].tags = tags;
            let idp = &world.identity_providers[i];
            (idp.arn.clone(), world.provider_state(idp))
        }
    };
    world.record(&arn, operation, state);
    world.counters.count_update(operation, true);
    Ok(())
}

fn tag_resource(world: &mut World, caller: &Caller, input: &Value) -> Result<Value, ServiceError> {
    const OP: &str = "TagResource";
    let token = str_member(input, "clientToken");
    let params = parameters(input);
    match world.check_token(OP, &caller.account, token, &params) {
        TokenCheck::Replay(response) => {
            world.counters.count_update(OP, false);
            return Ok(response);
        }
        TokenCheck::Mismatch => return Err(update_mismatch()),
        TokenCheck::Fresh => {}
    }
    let resource = taggable(world, caller, input)?;
    let added = tags_of(input)?;
    let arn = str_member(input, "resourceArn")
        .unwrap_or_default()
        .to_string();
    retag(world, resource, OP, |tags| {
        tagging::merged(tags, added).map_err(|m| {
            ServiceError::new(400, "TooManyTagsException", m).with("resourceName", json!(arn))
        })
    })?;
    let response = json!({});
    world.remember_token(OP, &caller.account, token, params, &response);
    Ok(response)
}

fn untag_resource(
    world: &mut World,
    caller: &Caller,
    input: &Value,
) -> Result<Value, ServiceError> {
    let resource = taggable(world, caller, input)?;
    let keys = tagging::tag_keys(input.get("tagKeys")).map_err(|m| field_error("tagKeys", m))?;
    retag(world, resource, "UntagResource", |tags| {
        let mut tags = tags.clone();
        for key in &keys {
            tags.remove(key);
        }
        Ok(tags)
    })?;
    Ok(json!({}))
}

fn list_tags(world: &World, caller: &Caller, input: &Value) -> Result<Value, ServiceError> {
    let tags = match taggable(world, caller, input)? {
        Taggable::Portal(i) => &world.portals[i].tags,
        Taggable::Provider(i) => &world.identity_providers[i].tags,
    };
    Ok(json!({ "tags": tagging::to_list(tags) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect()
    }

    #[test]
    fn oidc_needs_its_keys_and_a_valid_method() {
        let ok = details(&[
            ("client_id", "a"),
            ("client_secret", "s"),
            ("attributes_request_method", "GET"),
            ("oidc_issuer", "https://idp.example.com"),
            ("authorize_scopes", "openid"),
        ]);
        assert!(check_details("OIDC", &ok).is_empty());
        let mut bad = ok.clone();
        bad.remove("client_secret");
        bad.insert("attributes_request_method".into(), json!("PUT"));
        let problems = check_details("OIDC", &bad);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn saml_needs_exactly_one_metadata_source() {
        assert!(check_details("SAML", &details(&[("MetadataURL", "https://x")])).is_empty());
        assert_eq!(check_details("SAML", &details(&[])).len(), 1);
        let both = details(&[("MetadataURL", "https://x"), ("MetadataFile", "<xml/>")]);
        assert_eq!(check_details("SAML", &both).len(), 1);
        let bad_flag = details(&[("MetadataURL", "https://x"), ("IDPInit", "yes")]);
        assert_eq!(check_details("SAML", &bad_flag).len(), 1);
    }

    #[test]
    fn problems_never_contain_values() {
        let secret = "CANARY-123";
        let d = details(&[
            ("client_id", secret),
            ("private_key", secret),
            ("bogus", secret),
        ]);
        for (f, m) in check_details("Google", &d) {
            assert!(!f.contains("CANARY") && !m.contains("CANARY"));
        }
    }
}
