//! IAM Identity Center (SSO Admin, awsJson1_1, `X-Amz-Target: SWBExternalService.<Op>`):
//! account instances. One per account, never in the management account, asynchronous
//! `CREATE_IN_PROGRESS` -> `ACTIVE` / `CREATE_FAILED`.

use serde_json::{json, Map, Value};

use crate::ids;
use crate::protocol::{Output, ServiceError};
use crate::state::{page, Caller, Instance, TokenCheck, World};

pub(crate) const TARGET_PREFIX: &str = "SWBExternalService.";

/// The operation named by an `X-Amz-Target` header, if the emulator serves it.
pub(crate) fn operation(target: &str) -> Option<&'static str> {
    let name = target.strip_prefix(TARGET_PREFIX)?;
    crate::smithy::SSO_ADMIN_OPERATIONS
        .iter()
        .copied()
        .find(|op| *op == name)
}

pub(crate) fn execute(
    world: &mut World,
    caller: &Caller,
    operation: &str,
    input: &Value,
) -> Result<Output, ServiceError> {
    let out = match operation {
        "CreateInstance" => create_instance(world, caller, input)?,
        "DescribeInstance" => describe_instance(world, caller, input)?,
        "ListInstances" => list_instances(world, caller, input)?,
        "DeleteInstance" => delete_instance(world, caller, input)?,
        _ => {
            return Err(ServiceError::new(
                400,
                "UnknownOperationException",
                format!("Unknown operation {operation}"),
            ))
        }
    };
    Ok(Output::Json(out))
}

fn str_member<'a>(input: &'a Value, name: &str) -> Option<&'a str> {
    input.get(name).and_then(Value::as_str)
}

fn create_instance(
    world: &mut World,
    caller: &Caller,
    input: &Value,
) -> Result<Value, ServiceError> {
    const OP: &str = "CreateInstance";
    let token = str_member(input, "ClientToken");
    let parameters = json!({
        "Name": input.get("Name").cloned().unwrap_or(Value::Null),
        "Tags": input.get("Tags").cloned().unwrap_or(Value::Null),
    });
    match world.check_token(OP, &caller.account, token, &parameters) {
        TokenCheck::Replay(response) => {
            world.counters.count_create(OP, false);
            return Ok(response);
        }
        TokenCheck::Mismatch => {
            return Err(ServiceError::new(
                400,
                "IdempotentParameterMismatch",
                "The request uses the same client token as a previous, but non-identical request. \
                 Do not reuse a client token with different requests, unless the requests are identical.",
            ))
        }
        TokenCheck::Fresh => {}
    }
    if caller.account == world.config.management_account_id {
        return Err(ServiceError::conflict(format!(
            "An account instance of IAM Identity Center can't be created in the organization \
             management account {}; it owns the organization instance.",
            caller.account
        )));
    }
    // The organization instance's setting, an authorization check: it answers before the
    // one-instance-per-account check (AWS documents neither the error nor the order).
    if !world.config.account_instances_allowed {
        return Err(ServiceError::access_denied(format!(
            "User: {} is not authorized to perform: sso:CreateInstance: account instances of \
             IAM Identity Center are not enabled for the organization (the organization \
             instance {} does not allow account instances)",
            caller.arn, world.config.organization_instance.instance_arn
        )));
    }
    if let Some(existing) = world.instances.iter().find(|i| i.owner == caller.account) {
        return Err(ServiceError::conflict(format!(
            "An instance of IAM Identity Center already exists in account {}: {}",
            caller.account, existing.arn
        )));
    }
    let failure = world
        .config
        .account(&caller.account)
        .and_then(|a| a.instance_failure.clone());
    let instance = Instance {
        arn: ids::instance_arn(),
        identity_store_id: ids::identity_store_id(),
        owner: caller.account.clone(),
        name: str_member(input, "Name").map(str::to_string),
        created: std::time::SystemTime::now(),
        ready_at: World::activation(world.config.instance_activation_ms),
        organization: false,
        failure,
        fixed_status: None,
    };
    let response = json!({ "InstanceArn": instance.arn });
    world.instances.push(instance);
    world.remember_token(OP, &caller.account, token, parameters, &response);
    world.counters.count_create(OP, true);
    Ok(response)
}

fn metadata(i: &Instance) -> Value {
    let (status, reason) = i.status();
    let mut m = Map::new();
    m.insert("InstanceArn".into(), json!(i.arn));
    m.insert("IdentityStoreId".into(), json!(i.identity_store_id));
    m.insert("OwnerAccountId".into(), json!(i.owner));
    if let Some(name) = &i.name {
        m.insert("Name".into(), json!(name));
    }
    m.insert("CreatedDate".into(), json!(ids::epoch_seconds(i.created)));
    m.insert("Status".into(), json!(status));
    if let Some(reason) = reason {
        m.insert("StatusReason".into(), json!(reason));
    }
    Value::Object(m)
}

/// The caller's own instance with this ARN. Unknown and foreign instances are both
/// `AccessDeniedException`, as AWS answers for instances you cannot see.
fn own_instance<'a>(
    world: &'a World,
    caller: &Caller,
    arn: &str,
) -> Result<(usize, &'a Instance), ServiceError> {
    world
        .instances
        .iter()
        .enumerate()
        .find(|(_, i)| i.arn == arn && i.owner == caller.account)
        .ok_or_else(|| {
            ServiceError::access_denied(format!(
                "User: {} is not authorized to access instance {arn}",
                caller.arn
            ))
        })
}

/// The management account sees every instance of the organization; a member account
/// sees its own.
fn visible_to(world: &World, caller: &Caller, instance: &Instance) -> bool {
    instance.owner == caller.account || caller.account == world.config.management_account_id
}

fn describe_instance(world: &World, caller: &Caller, input: &Value) -> Result<Value, ServiceError> {
    let arn = str_member(input, "InstanceArn").unwrap_or_default();
    let instance = world
        .instances
        .iter()
        .find(|i| i.arn == arn && visible_to(world, caller, i))
        .ok_or_else(|| {
            ServiceError::access_denied(format!(
                "User: {} is not authorized to access instance {arn}",
                caller.arn
            ))
        })?;
    Ok(metadata(instance))
}

fn list_instances(world: &World, caller: &Caller, input: &Value) -> Result<Value, ServiceError> {
    let size = input
        .get("MaxResults")
        .and_then(Value::as_u64)
        .unwrap_or(10)
        .min(10) as usize;
    let visible: Vec<&Instance> = world
        .instances
        .iter()
        .filter(|i| visible_to(world, caller, i))
        .collect();
    let (items, next) =
        page(&visible, str_member(input, "NextToken"), size).map_err(ServiceError::validation)?;
    let mut out = Map::new();
    out.insert(
        "Instances".into(),
        Value::Array(items.iter().map(|i| metadata(i)).collect()),
    );
    if let Some(next) = next {
        out.insert("NextToken".into(), json!(next));
    }
    Ok(Value::Object(out))
}

fn delete_instance(
    world: &mut World,
    caller: &Caller,
    input: &Value,
) -> Result<Value, ServiceError> {
    let arn = str_member(input, "InstanceArn").unwrap_or_default();
    let (index, instance) = own_instance(world, caller, arn)?;
    if instance.organization {
        return Err(ServiceError::conflict(
            "The organization instance can't be deleted through this API in the emulator.",
        ));
    }
    world.instances.remove(index);
    Ok(json!({}))
}
