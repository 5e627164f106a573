//! IAM Identity Center (SSO Admin, awsJson1_1, `X-Amz-Target: SWBExternalService.<Op>`):
//! account instances. One per account, never in the management account, asynchronous
//! `CREATE_IN_PROGRESS` -> `ACTIVE` / `CREATE_FAILED`; renamed, re-keyed and tagged only
//! by their owner while `ACTIVE`.

use serde_json::{json, Map, Value};

use crate::ids;
use crate::protocol::{Output, ServiceError};
use crate::state::{instance_state, page, Caller, Instance, TokenCheck, World};
use crate::tagging;

pub(crate) const TARGET_PREFIX: &str = "SWBExternalService.";

/// What AWS answers `CreateInstance` in the organization's management account.
pub(crate) const MANAGEMENT_ACCOUNT_REFUSED: &str =
    "Organization management account is not allowed to perform the operation.";

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
        "UpdateInstance" => update_instance(world, caller, input)?,
        "TagResource" => tag_resource(world, caller, input)?,
        "UntagResource" => untag_resource(world, caller, input)?,
        "ListTagsForResource" => list_tags(world, caller, input)?,
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
    // AWS's own words (SsoAdmin, HTTP 400, seen in public reports); the code is inferred.
    if caller.account == world.config.management_account_id {
        return Err(ServiceError::validation(MANAGEMENT_ACCOUNT_REFUSED));
    }
    // An organization instance in an opt-in Region blocks account instances whatever the
    // setting (documented); the error and its message are inferred, modelled like the
    // setting's refusal.
    if world.config.organization_instance_in_opt_in_region {
        return Err(ServiceError::access_denied(format!(
            "User: {} is not authorized to perform: sso:CreateInstance: account instances of \
             IAM Identity Center can't be created while the organization instance {} is in an \
             opt-in Region",
            caller.arn, world.config.organization_instance.instance_arn
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
    let tags = tagging::tag_list(input.get("Tags")).map_err(ServiceError::validation)?;
    let failure = world
        .config
        .account(&caller.account)
        .and_then(|a| Some((a.instance_failure.clone()?, a.instance_failures)))
        .and_then(|(reason, times)| {
            let failed = world
                .failed_creations
                .entry(caller.account.clone())
                .or_default();
            if times.is_some_and(|times| *failed >= times) {
                return None;
            }
            *failed += 1;
            Some(reason)
        });
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
        tags,
        encryption: None,
    };
    let response = json!({ "InstanceArn": instance.arn });
    world.record(&instance.arn, OP, instance_state(&instance));
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
    if let Some(encryption) = &i.encryption {
        m.insert("EncryptionConfigurationDetails".into(), encryption.clone());
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
    world.record(arn, "DeleteInstance", json!({"deleted": true}));
    Ok(json!({}))
}

/// The instance `arn` that the caller may change: `ResourceNotFoundException` if there is
/// none, `AccessDeniedException` if another account owns it, `ConflictException` unless it
/// is `ACTIVE` (until then only `DescribeInstance` and `DeleteInstance` work).
fn writable_instance(world: &World, caller: &Caller, arn: &str) -> Result<usize, ServiceError> {
    let (index, instance) = world
        .instances
        .iter()
        .enumerate()
        .find(|(_, i)| i.arn == arn)
        .ok_or_else(|| ServiceError::not_found(format!("Instance {arn} not found.")))?;
    if instance.owner != caller.account {
        return Err(ServiceError::access_denied(format!(
            "User: {} is not authorized to change instance {arn}: it belongs to another account",
            caller.arn
        )));
    }
    let (status, _) = instance.status();
    if status != "ACTIVE" {
        return Err(ServiceError::conflict(format!(
            "Instance {arn} is {status}; until it is ACTIVE only DescribeInstance and \
             DeleteInstance work."
        )));
    }
    Ok(index)
}

/// `EncryptionConfigurationDetails` for an `EncryptionConfiguration` (already checked
/// against the model): `KmsKeyArn` is required with `CUSTOMER_MANAGED_KEY` and refused with
/// `AWS_OWNED_KMS_KEY`, as the model documents. The new key is in use at once.
fn encryption_details(config: &Value) -> Result<Value, ServiceError> {
    let key_type = str_member(config, "KeyType").unwrap_or_default();
    let key_arn = str_member(config, "KmsKeyArn");
    match (key_type, key_arn) {
        ("CUSTOMER_MANAGED_KEY", None) => Err(ServiceError::validation(
            "KmsKeyArn is required when KeyType is CUSTOMER_MANAGED_KEY.",
        )),
        ("AWS_OWNED_KMS_KEY", Some(_)) => Err(ServiceError::validation(
            "KmsKeyArn can't be specified when KeyType is AWS_OWNED_KMS_KEY.",
        )),
        _ => {
            let mut details = Map::new();
            details.insert("KeyType".into(), json!(key_type));
            if let Some(arn) = key_arn {
                details.insert("KmsKeyArn".into(), json!(arn));
            }
            details.insert("EncryptionStatus".into(), json!("ENABLED"));
            Ok(Value::Object(details))
        }
    }
}

fn update_instance(
    world: &mut World,
    caller: &Caller,
    input: &Value,
) -> Result<Value, ServiceError> {
    const OP: &str = "UpdateInstance";
    let arn = str_member(input, "InstanceArn").unwrap_or_default();
    // invalid input is refused before the instance is looked at
    let encryption = input
        .get("EncryptionConfiguration")
        .map(encryption_details)
        .transpose()?;
    let index = writable_instance(world, caller, arn)?;
    let instance = &mut world.instances[index];
    if let Some(name) = str_member(input, "Name") {
        instance.name = Some(name.to_string());
    }
    if encryption.is_some() {
        instance.encryption = encryption;
    }
    let state = instance_state(instance);
    world.record(arn, OP, state);
    world.counters.count_update(OP, true);
    Ok(json!({}))
}

/// The instance a tagging call is about. The only taggable resources the emulator holds
/// are instances: any other `ResourceArn` (permission set, application, trusted token
/// issuer) is not found. `InstanceArn`, when given, must be that same instance.
fn tagged_instance(
    world: &World,
    caller: &Caller,
    input: &Value,
    write: bool,
) -> Result<usize, ServiceError> {
    let resource = str_member(input, "ResourceArn").unwrap_or_default();
    if !ids::is_instance_arn(resource) {
        return Err(ServiceError::not_found(format!(
            "Resource {resource} not found."
        )));
    }
    if let Some(instance) = str_member(input, "InstanceArn").filter(|i| *i != resource) {
        return Err(ServiceError::validation(format!(
            "InstanceArn {instance} is not the instance of resource {resource}."
        )));
    }
    if write {
        return writable_instance(world, caller, resource);
    }
    let (index, instance) = world
        .instances
        .iter()
        .enumerate()
        .find(|(_, i)| i.arn == resource)
        .ok_or_else(|| ServiceError::not_found(format!("Resource {resource} not found.")))?;
    if !visible_to(world, caller, instance) {
        return Err(ServiceError::access_denied(format!(
            "User: {} is not authorized to access instance {resource}",
            caller.arn
        )));
    }
    Ok(index)
}

fn tag_resource(world: &mut World, caller: &Caller, input: &Value) -> Result<Value, ServiceError> {
    const OP: &str = "TagResource";
    let added = tagging::tag_list(input.get("Tags")).map_err(ServiceError::validation)?;
    let index = tagged_instance(world, caller, input, true)?;
    let instance = &mut world.instances[index];
    instance.tags = tagging::merged(&instance.tags, added).map_err(ServiceError::quota)?;
    let (arn, state) = (instance.arn.clone(), instance_state(instance));
    world.record(&arn, OP, state);
    world.counters.count_update(OP, true);
    Ok(json!({}))
}

fn untag_resource(
    world: &mut World,
    caller: &Caller,
    input: &Value,
) -> Result<Value, ServiceError> {
    const OP: &str = "UntagResource";
    let keys = tagging::tag_keys(input.get("TagKeys")).map_err(ServiceError::validation)?;
    let index = tagged_instance(world, caller, input, true)?;
    let instance = &mut world.instances[index];
    for key in &keys {
        instance.tags.remove(key);
    }
    let (arn, state) = (instance.arn.clone(), instance_state(instance));
    world.record(&arn, OP, state);
    world.counters.count_update(OP, true);
    Ok(json!({}))
}

fn list_tags(world: &World, caller: &Caller, input: &Value) -> Result<Value, ServiceError> {
    let index = tagged_instance(world, caller, input, false)?;
    let tags: Vec<Value> = tagging::to_list(&world.instances[index].tags)
        .as_array()
        .cloned()
        .unwrap_or_default();
    let (items, next) = page(
        &tags,
        str_member(input, "NextToken"),
        tagging::MAX_TAGS_PER_RESOURCE,
    )
    .map_err(ServiceError::validation)?;
    let mut out = Map::new();
    out.insert("Tags".into(), Value::Array(items.to_vec()));
    if let Some(next) = next {
        out.insert("NextToken".into(), json!(next));
    }
    Ok(Value::Object(out))
}
