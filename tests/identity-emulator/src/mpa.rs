//! Multi-party approval (restJson1, PascalCase): the organization's identity source.
//! Only the management account may create it, once per organization; it must point at
//! the organization instance of IAM Identity Center (`CREATING` -> `ACTIVE`), else it
//! ends in `ERROR` (`IDC_INSTANCE_NOT_VALID` for an account instance,
//! `IDC_INSTANCE_NOT_FOUND` for an unknown one or another Region).

use serde_json::{json, Map, Value};

use crate::ids;
use crate::protocol::{Output, ServiceError};
use crate::state::{page, Caller, IdentitySource, TokenCheck, World};

pub(crate) fn execute(
    world: &mut World,
    caller: &Caller,
    operation: &str,
    input: &Value,
) -> Result<Output, ServiceError> {
    let out = match operation {
        "CreateIdentitySource" => create(world, caller, input)?,
        "GetIdentitySource" => get(world, caller, input)?,
        "ListIdentitySources" => list(world, caller, input)?,
        "DeleteIdentitySource" => delete(world, caller, input)?,
        _ => {
            return Err(ServiceError::unknown_operation(format!(
                "Unknown operation {operation}"
            )))
        }
    };
    Ok(Output::Json(out))
}

fn str_at<'a>(input: &'a Value, pointer: &str) -> Option<&'a str> {
    input.pointer(pointer).and_then(Value::as_str)
}

fn create(world: &mut World, caller: &Caller, input: &Value) -> Result<Value, ServiceError> {
    const OP: &str = "CreateIdentitySource";
    let token = str_at(input, "/ClientToken");
    let parameters = json!({
        "IdentitySourceParameters": input.get("IdentitySourceParameters").cloned().unwrap_or(Value::Null),
        "Tags": input.get("Tags").cloned().unwrap_or(Value::Null),
    });
    match world.check_token(OP, &caller.account, token, &parameters) {
        TokenCheck::Replay(response) => {
            world.counters.count_create(OP, false);
            return Ok(response);
        }
        // CreateIdentitySource models no ConflictException: a reused token is invalid input.
        TokenCheck::Mismatch => {
            return Err(ServiceError::validation(
                "The ClientToken was already used with different parameters (IdempotentParameterMismatch).",
            ))
        }
        TokenCheck::Fresh => {}
    }
    if caller.account != world.config.management_account_id {
        return Err(ServiceError::access_denied(format!(
            "User: {} is not authorized to perform: mpa:CreateIdentitySource: an identity source \
             can only be created in the organization management account",
            caller.arn
        )));
    }
    if let Some(existing) = world.identity_sources.first() {
        return Err(ServiceError::quota(format!(
            "The organization already has an identity source ({}); only one is allowed.",
            existing.arn
        )));
    }
    let Some(iic) = input.pointer("/IdentitySourceParameters/IamIdentityCenter") else {
        return Err(ServiceError::validation(
            "IdentitySourceParameters must contain IamIdentityCenter.",
        ));
    };
    let instance_arn = str_at(iic, "/InstanceArn").unwrap_or_default().to_string();
    let region = str_at(iic, "/Region").unwrap_or_default().to_string();
    let instance = world.instances.iter().find(|i| i.arn == instance_arn);
    let failure = match instance {
        Some(i) if i.organization && region == world.config.region => None,
        Some(i) if !i.organization => Some((
            "IDC_INSTANCE_NOT_VALID",
            format!(
                "{instance_arn} is an account instance of IAM Identity Center; an identity \
                 source needs the organization instance"
            ),
        )),
        _ => Some((
            "IDC_INSTANCE_NOT_FOUND",
            format!("No IAM Identity Center instance {instance_arn} in Region {region}"),
        )),
    };
    let source = IdentitySource {
        arn: ids::identity_source_arn(&caller.region, &caller.account),
        owner: caller.account.clone(),
        identity_store_id: instance.map(|i| i.identity_store_id.clone()),
        instance_arn,
        region,
        created: std::time::SystemTime::now(),
        ready_at: World::activation(world.config.identity_source_activation_ms),
        failure,
    };
    let response = json!({
        "IdentitySourceType": "IAM_IDENTITY_CENTER",
        "IdentitySourceArn": source.arn,
        "CreationTime": ids::iso8601(source.created),
    });
    world.identity_sources.push(source);
    world.remember_token(OP, &caller.account, token, parameters, &response);
    world.counters.count_create(OP, true);
    Ok(response)
}

fn describe(s: &IdentitySource) -> Value {
    let (status, failure) = s.status();
    let mut iic = Map::new();
    iic.insert("InstanceArn".into(), json!(s.instance_arn));
    iic.insert("Region".into(), json!(s.region));
    if let (Some(store), "ACTIVE") = (&s.identity_store_id, status) {
        iic.insert(
            "ApprovalPortalUrl".into(),
            json!(format!("https://{store}.awsapps.com/approval")),
        );
    }
    let mut out = Map::new();
    out.insert("IdentitySourceType".into(), json!("IAM_IDENTITY_CENTER"));
    out.insert(
        "IdentitySourceParameters".into(),
        json!({"IamIdentityCenter": iic}),
    );
    out.insert("IdentitySourceArn".into(), json!(s.arn));
    out.insert("CreationTime".into(), json!(ids::iso8601(s.created)));
    out.insert("Status".into(), json!(status));
    if let Some((code, message)) = failure {
        out.insert("StatusCode".into(), json!(code));
        out.insert("StatusMessage".into(), json!(message));
    }
    Value::Object(out)
}

fn own<'a>(
    world: &'a World,
    caller: &Caller,
    arn: &str,
) -> Result<(usize, &'a IdentitySource), ServiceError> {
    world
        .identity_sources
        .iter()
        .enumerate()
        .find(|(_, s)| s.arn == arn && s.owner == caller.account)
        .ok_or_else(|| ServiceError::not_found(format!("Identity source {arn} not found.")))
}

fn get(world: &World, caller: &Caller, input: &Value) -> Result<Value, ServiceError> {
    let arn = str_at(input, "/IdentitySourceArn").unwrap_or_default();
    let (_, source) = own(world, caller, arn)?;
    Ok(describe(source))
}

fn list(world: &World, caller: &Caller, input: &Value) -> Result<Value, ServiceError> {
    let size = input
        .get("MaxResults")
        .and_then(Value::as_u64)
        .unwrap_or(20)
        .min(20) as usize;
    let visible: Vec<&IdentitySource> = world
        .identity_sources
        .iter()
        .filter(|s| s.owner == caller.account)
        .collect();
    let (items, next) =
        page(&visible, str_at(input, "/NextToken"), size).map_err(ServiceError::validation)?;
    let mut out = Map::new();
    out.insert(
        "IdentitySources".into(),
        Value::Array(items.iter().map(|s| describe(s)).collect()),
    );
    if let Some(next) = next {
        out.insert("NextToken".into(), json!(next));
    }
    Ok(Value::Object(out))
}

fn delete(world: &mut World, caller: &Caller, input: &Value) -> Result<Value, ServiceError> {
    let arn = str_at(input, "/IdentitySourceArn").unwrap_or_default();
    // DeleteIdentitySource models no ResourceNotFoundException: deleting what is not
    // there (or no longer there) succeeds, as an idempotent delete.
    if let Ok((index, _)) = own(world, caller, arn) {
        world.identity_sources.remove(index);
    }
    Ok(json!({}))
}
