//! One HTTP/1.1 listener for all four services and the admin API.
//!
//! A request is routed to a service by `X-Amz-Target` (SSO Admin), else by the service in
//! the SigV4 credential scope (`sso`, `mpa`, `workspaces-web`, `sts`), else by its path.
//! The caller is the access key id of the credential scope (signatures are not verified).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::faults::Fault;
use crate::iam::forward::{self, Forwarder, Place};
use crate::iam::{self, Check};
use crate::protocol::{self, HttpResponse, Output, Service, ServiceError};
use crate::quotas::Metered;
use crate::smithy::Models;
use crate::state::World;
use crate::{admin, mpa, sso_admin, sts, workspaces_web};

/// Largest request body accepted (identity provider details may hold SAML metadata).
const MAX_BODY: usize = 8 * 1024 * 1024;

pub(crate) struct Shared {
    pub world: Mutex<World>,
    pub models: &'static Models,
    /// Set with `forward_url`: other services' requests go to moto.
    pub forwarder: Option<Forwarder>,
}

impl Shared {
    /// The world, even if a previous holder panicked (state stays usable for inspection).
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Returned by the service to make hyper drop the connection without a response.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, shared.clone(), shutdown.clone()));
                }
                // e.g. too many open files: back off instead of spinning
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            _ = shutdown.changed() => break,
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    connections.abort_all();
}

async fn serve_connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| handle(shared.clone(), req));
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// The SigV4 credential scope of a request: `(access key id, region, service)`.
fn credential_scope(headers: &HeaderMap, query: &str) -> Option<(String, String, String)> {
    let from_header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| {
            let start = auth.find("Credential=")? + "Credential=".len();
            let rest = &auth[start..];
            Some(
                rest.split([',', ' '])
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            )
        });
    let credential = from_header.or_else(|| {
        let form = sts::parse_form(query.as_bytes());
        form.get("X-Amz-Credential").cloned()
    })?;
    let mut parts = credential.split('/');
    let key = parts.next()?.to_string();
    let _date = parts.next();
    let region = parts.next().unwrap_or_default().to_string();
    let service = parts.next().unwrap_or_default().to_string();
    Some((key, region, service))
}

/// What a routed request asks for.
struct Routed {
    operation: &'static str,
    input: Input,
}

enum Input {
    Json(Value),
    Form(BTreeMap<String, String>),
}

fn decode_label(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

fn json_body(body: &[u8]) -> Result<Map<String, Value>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("The request body must be a JSON object.".to_string()),
        Err(e) => Err(format!("Unable to parse the request body as JSON: {e}")),
    }
}

/// A query parameter bound to an integer member: an integer if it parses, else the raw
/// string (which the validator reports as a type error).
fn query_int(query: &BTreeMap<String, String>, key: &str) -> Option<Value> {
    query.get(key).map(|v| match v.parse::<i64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::from(v.clone()),
    })
}

fn which_service(
    headers: &HeaderMap,
    scope_service: Option<&str>,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Option<Service> {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    if target.is_some_and(|t| t.starts_with(sso_admin::TARGET_PREFIX)) {
        return Some(Service::SsoAdmin);
    }
    match scope_service {
        Some("sso") => return Some(Service::SsoAdmin),
        Some("mpa") => return Some(Service::Mpa),
        Some("workspaces-web") => return Some(Service::WorkspacesWeb),
        Some("sts") => return Some(Service::Sts),
        _ => {}
    }
    if path.starts_with("/identity-sources") {
        Some(Service::Mpa)
    } else if path.starts_with("/portals")
        || path.starts_with("/identityProviders")
        || path.starts_with("/tags/")
    {
        Some(Service::WorkspacesWeb)
    } else if method == Method::POST
        && (body.starts_with(b"Action=") || body.windows(8).any(|w| w == b"&Action="))
    {
        Some(Service::Sts)
    } else {
        None
    }
}

fn route(
    service: Service,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    query: &str,
    body: &[u8],
) -> Result<Routed, ServiceError> {
    let unknown = || {
        ServiceError::unknown_operation(format!(
            "No operation of this service matches {method} {path}"
        ))
    };
    let query_map = sts::parse_form(query.as_bytes());
    let json = |mut extra: Map<String, Value>| -> Result<Input, ServiceError> {
        let mut body = json_body(body).map_err(|m| match service {
            Service::WorkspacesWeb => {
                ServiceError::validation(m).with("reason", serde_json::json!("cannotParse"))
            }
            _ => ServiceError::serialization(m),
        })?;
        body.append(&mut extra);
        Ok(Input::Json(Value::Object(body)))
    };
    let routed = |operation: &'static str, input: Input| Ok(Routed { operation, input });
    match service {
        Service::SsoAdmin => {
            let target = headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let operation = sso_admin::operation(target).ok_or_else(|| {
                ServiceError::new(
                    400,
                    "UnknownOperationException",
                    format!("Unknown operation: {target:?}"),
                )
            })?;
            if method != Method::POST {
                return Err(unknown());
            }
            routed(operation, json(Map::new())?)
        }
        Service::Sts => {
            let mut params = sts::parse_form(query.as_bytes());
            params.extend(sts::parse_form(body));
            let action = params.get("Action").cloned().unwrap_or_default();
            let operation = sts::OPERATIONS
                .iter()
                .copied()
                .find(|op| *op == action)
                .ok_or_else(|| {
                    ServiceError::new(
                        400,
                        "InvalidAction",
                        format!("Could not find operation {action} for version 2011-06-15"),
                    )
                })?;
            routed(operation, Input::Form(params))
        }
        Service::Mpa => {
            let trimmed = path.trim_end_matches('/');
            if trimmed == "/identity-sources" && *method == Method::POST {
                if query_map.contains_key("List") {
                    let mut extra = Map::new();
                    if let Some(v) = query_int(&query_map, "MaxResults") {
                        extra.insert("MaxResults".into(), v);
                    }
                    if let Some(v) = query_map.get("NextToken") {
                        extra.insert("NextToken".into(), Value::from(v.clone()));
                    }
                    return routed("ListIdentitySources", json(extra)?);
                }
                return routed("CreateIdentitySource", json(Map::new())?);
            }
            let Some(label) = path
                .strip_prefix("/identity-sources/")
                .filter(|l| !l.is_empty())
            else {
                return Err(unknown());
            };
            let mut extra = Map::new();
            extra.insert("IdentitySourceArn".into(), Value::from(decode_label(label)));
            match *method {
                Method::GET => routed("GetIdentitySource", json(extra)?),
                Method::DELETE => routed("DeleteIdentitySource", json(extra)?),
                _ => Err(unknown()),
            }
        }
        Service::WorkspacesWeb => {
            if path == "/portals" && *method == Method::POST {
                return routed("CreatePortal", json(Map::new())?);
            }
            if path == "/identityProviders" && *method == Method::POST {
                return routed("CreateIdentityProvider", json(Map::new())?);
            }
            if let Some(rest) = path.strip_prefix("/portals/").filter(|r| !r.is_empty()) {
                if *method != Method::GET {
                    return Err(unknown());
                }
                let mut extra = Map::new();
                if let Some(arn) = rest.strip_suffix("/identityProviders") {
                    extra.insert("portalArn".into(), Value::from(decode_label(arn)));
                    if let Some(v) = query_int(&query_map, "maxResults") {
                        extra.insert("maxResults".into(), v);
                    }
                    if let Some(v) = query_map.get("nextToken") {
                        extra.insert("nextToken".into(), Value::from(v.clone()));
                    }
                    return routed("ListIdentityProviders", json(extra)?);
                }
                extra.insert("portalArn".into(), Value::from(decode_label(rest)));
                return routed("GetPortal", json(extra)?);
            }
            if let Some(rest) = path
                .strip_prefix("/identityProviders/")
                .filter(|r| !r.is_empty())
            {
                let mut extra = Map::new();
                extra.insert(
                    "identityProviderArn".into(),
                    Value::from(decode_label(rest)),
                );
                return match *method {
                    Method::GET => routed("GetIdentityProvider", json(extra)?),
                    Method::DELETE => routed("DeleteIdentityProvider", json(extra)?),
                    Method::PATCH => routed("UpdateIdentityProvider", json(extra)?),
                    _ => Err(unknown()),
                };
            }
            if let Some(rest) = path.strip_prefix("/tags/").filter(|r| !r.is_empty()) {
                let mut extra = Map::new();
                extra.insert("resourceArn".into(), Value::from(decode_label(rest)));
                return match *method {
                    Method::POST => routed("TagResource", json(extra)?),
                    Method::GET => routed("ListTagsForResource", json(extra)?),
                    Method::DELETE => {
                        // a list bound to a query key repeats the key
                        let keys: Vec<Value> = sts::parse_form_pairs(query.as_bytes())
                            .into_iter()
                            .filter(|(k, _)| k == "tagKeys")
                            .map(|(_, v)| Value::from(v))
                            .collect();
                        if !keys.is_empty() {
                            extra.insert("tagKeys".into(), Value::Array(keys));
                        }
                        routed("UntagResource", json(extra)?)
                    }
                    _ => Err(unknown()),
                };
            }
            Err(unknown())
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<HttpResponse, DropConnection> {
    let (parts, body) = req.into_parts();
    let body: Bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(protocol::admin_json(
                413,
                &serde_json::json!({"message": "request body too large or unreadable"}),
            ))
        }
    };
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or_default();
    if path == "/_emulator" || path.starts_with("/_emulator/") {
        return Ok(admin::handle(&shared, &parts.method, path, &body));
    }
    let request_id = crate::ids::request_id();
    let scope = credential_scope(&parts.headers, query);
    let scope_service = scope.as_ref().map(|s| s.2.as_str());
    if let Some(forwarder) = &shared.forwarder {
        if forward::is_forwarded(scope_service, &parts.headers) {
            return Ok(forward_call(&shared, forwarder, &parts, body, scope.as_ref()).await);
        }
    }
    let Some(service) = which_service(&parts.headers, scope_service, &parts.method, path, &body)
    else {
        let err = ServiceError::unknown_operation(format!(
            "No service of this emulator matches {} {path}",
            parts.method
        ));
        return Ok(protocol::error(Service::SsoAdmin, &err, &request_id));
    };
    let routed = match route(service, &parts.headers, &parts.method, path, query, &body) {
        Ok(r) => r,
        Err(err) => return Ok(protocol::error(service, &err, &request_id)),
    };
    let operation = routed.operation;

    let (admitted, fault, latency_ms) = {
        let mut world = shared.world();
        world.counters.count_call(operation);
        // the quota first: a throttled call draws no fault but takes the rule's latency
        if admit(&mut world, service, operation, scope.as_ref()) {
            let (fault, latency) = decide_fault(&mut world, service, operation);
            (true, fault, latency)
        } else {
            world.counters.count_throttled(operation);
            (false, Fault::None, world.faults.latency(operation))
        }
    };
    if latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    if !admitted {
        // throttled by a quota: the same answer as an injected throttle, nothing done
        return Ok(protocol::error(service, &throttling(service), &request_id));
    }
    match fault {
        Fault::Throttle => return Ok(protocol::error(service, &throttling(service), &request_id)),
        Fault::ServerError => return Ok(protocol::error(service, &internal(service), &request_id)),
        Fault::Conflict => return Ok(protocol::error(service, &conflict(), &request_id)),
        _ => {}
    }

    let invocation = parts
        .headers
        .get("amz-sdk-invocation-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let result = execute(&shared, service, routed, scope.as_ref(), invocation);
    match fault {
        Fault::CommitThenFail => Ok(protocol::error(service, &internal(service), &request_id)),
        Fault::CommitThenDrop => Err(DropConnection),
        _ => Ok(match result {
            Ok(output) => protocol::success(service, output, &request_id),
            Err(err) => protocol::error(service, &err, &request_id),
        }),
    }
}

/// Take a token from the bucket the call is metered against (always `true` without
/// quotas): the calling account, the organization (its management account) or everyone,
/// per the rule's scope, in the Region of the credential scope.
fn admit(
    world: &mut World,
    service: Service,
    operation: &str,
    scope: Option<&(String, String, String)>,
) -> bool {
    if !world.quotas.active() {
        return true;
    }
    let caller = world.caller(scope.map(|s| s.0.as_str()), scope.map(|s| s.1.as_str()));
    let call = Metered {
        service: service_name(service),
        operation,
        account: &caller.account,
        organization: &world.config.management_account_id,
        region: &caller.region,
    };
    world.quotas.admit(&call, Instant::now())
}

/// The SigV4 name of `service` (each service has its own buckets).
fn service_name(service: Service) -> &'static str {
    match service {
        Service::SsoAdmin => "sso",
        Service::Mpa => "mpa",
        Service::WorkspacesWeb => "workspaces-web",
        Service::Sts => "sts",
    }
}

/// Draw the fault of an admitted call, count it, and return it with the latency to add.
fn decide_fault(world: &mut World, service: Service, operation: &str) -> (Fault, u64) {
    let (fault, latency) = world
        .faults
        .decide(operation, can_conflict(service, operation));
    if fault != Fault::None {
        let counts = world.counters.fault_counts(operation);
        match fault {
            Fault::Throttle => counts.throttled += 1,
            Fault::ServerError => counts.server_errors += 1,
            Fault::Conflict => counts.conflicts += 1,
            Fault::CommitThenFail => counts.commit_then_fail += 1,
            Fault::CommitThenDrop => counts.commit_then_drop += 1,
            Fault::None => {}
        }
    }
    (fault, latency)
}

/// The throttling error of `service`, whether a quota or an injected fault throttles:
/// SSO Admin, MPA and WorkSpaces Web 429 `ThrottlingException` (WorkSpaces Web with
/// `Retry-After`), STS 400 `Throttling`.
fn throttling(service: Service) -> ServiceError {
    match service {
        Service::Sts => ServiceError::new(400, "Throttling", "Rate exceeded"),
        _ => ServiceError::throttling(),
    }
}

/// Writes, which a `ConflictException` of an unpropagated earlier write can answer.
fn can_conflict(service: Service, operation: &str) -> bool {
    service != Service::Sts
        && ["Create", "Update", "Delete", "Tag", "Untag"]
            .iter()
            .any(|p| operation.starts_with(p))
}

/// SSO Admin's documented conflict: "a previous successful write did not have time to
/// propagate"; nothing is done and a retry with backoff is the answer.
fn conflict() -> ServiceError {
    ServiceError::conflict(
        "A conflict with a previous write was detected: a concurrent operation is in \
         progress; retry with backoff.",
    )
}

fn internal(service: Service) -> ServiceError {
    match service {
        Service::Sts => ServiceError::new(500, "InternalFailure", "Internal failure"),
        _ => ServiceError::internal(),
    }
}

/// The only Region of Multi-party approval: "You must create approval teams and the identity
/// source in the US East (N. Virginia) Region".
pub(crate) const MPA_REGION: &str = "us-east-1";

/// MPA requests signed for another Region are refused the way AWS refuses a credential
/// scoped to a Region the endpoint does not serve (403 `InvalidSignatureException`). An
/// unsigned request is taken to be in the configured Region.
fn check_mpa_region(
    scope: Option<&(String, String, String)>,
    default_region: &str,
) -> Result<(), ServiceError> {
    let region = scope
        .map(|s| s.1.as_str())
        .filter(|r| !r.is_empty())
        .unwrap_or(default_region);
    if region == MPA_REGION {
        return Ok(());
    }
    Err(ServiceError::new(
        403,
        "InvalidSignatureException",
        format!(
            "Credential should be scoped to a valid region, not '{region}'. Multi-party \
             approval is available only in {MPA_REGION}: call it there (the organization \
             instance of IAM Identity Center may be in any Region)."
        ),
    ))
}

/// Validate against the model, then run the operation on the world (under the lock, no
/// await inside).
fn execute(
    shared: &Shared,
    service: Service,
    routed: Routed,
    scope: Option<&(String, String, String)>,
    invocation: Option<String>,
) -> Result<Output, ServiceError> {
    if service == Service::Mpa {
        check_mpa_region(scope, &shared.world().config.region)?;
    }
    let models = shared.models;
    if let Input::Json(input) = &routed.input {
        let model = match service {
            Service::SsoAdmin => Some(&models.sso_admin),
            Service::Mpa => Some(&models.mpa),
            Service::WorkspacesWeb => Some(&models.workspaces_web),
            Service::Sts => None,
        };
        if let Some(model) = model {
            model
                .validate(routed.operation, input)
                .map_err(|e| ServiceError::from_input(service, &e))?;
        }
    }
    let mut guard = shared.world();
    let world: &mut World = &mut guard;
    world.invocation = invocation;
    let caller = world.caller(scope.map(|s| s.0.as_str()), scope.map(|s| s.1.as_str()));
    if let Input::Json(input) = &routed.input {
        authorize_call(world, service, routed.operation, input, &caller)?;
    }
    match (service, &routed.input) {
        (Service::SsoAdmin, Input::Json(v)) => {
            sso_admin::execute(world, &caller, routed.operation, v)
        }
        (Service::Mpa, Input::Json(v)) => mpa::execute(world, &caller, routed.operation, v),
        (Service::WorkspacesWeb, Input::Json(v)) => {
            workspaces_web::execute(world, &caller, routed.operation, v)
        }
        (Service::Sts, Input::Form(f)) => sts::execute(world, &caller, routed.operation, f),
        _ => Err(ServiceError::internal()),
    }
}

/// IAM for an emulated call (nothing without a policy set or for the root user): the
/// operation's action and its dependent actions, refused as the service refuses access.
fn authorize_call(
    world: &mut World,
    service: Service,
    operation: &str,
    input: &Value,
    caller: &crate::state::Caller,
) -> Result<(), ServiceError> {
    let Some(set) = world.config.iam.as_ref() else {
        return Ok(());
    };
    let management = &world.config.management_account_id;
    let Some(acting) = iam::acting(set, &caller.identity, management, &world.config.region) else {
        return Ok(());
    };
    let instances = &world.instances;
    let checks = iam::operation_checks(service, operation, input, &caller.account, |arn| {
        instances
            .iter()
            .find(|i| i.arn == arn)
            .map(|i| i.identity_store_id.clone())
    });
    iam::authorize(&acting, &caller.region, &checks, &mut world.observed)
        .map_err(|d| ServiceError::access_denied(d.message(&caller.arn)))
}

/// A request for a service the emulator does not serve: authorized, then sent to moto.
async fn forward_call(
    shared: &Shared,
    forwarder: &Forwarder,
    parts: &http::request::Parts,
    body: Bytes,
    scope: Option<&(String, String, String)>,
) -> HttpResponse {
    let service = scope.map(|s| s.2.as_str()).unwrap_or_default();
    let refusal = {
        let mut guard = shared.world();
        let world: &mut World = &mut guard;
        let caller = world.caller(scope.map(|s| s.0.as_str()), scope.map(|s| s.1.as_str()));
        let management = world.config.management_account_id.clone();
        let config = &world.config;
        let acting = config
            .iam
            .as_ref()
            .and_then(|set| iam::acting(set, &caller.identity, &management, &config.region));
        match acting {
            None => None,
            Some(acting) => {
                let place = Place {
                    account: &caller.account,
                    region: &caller.region,
                    management: &management,
                };
                let query = parts.uri.query().unwrap_or_default();
                match forward::checks(
                    service,
                    &parts.headers,
                    parts.uri.path(),
                    query,
                    &body,
                    &place,
                ) {
                    Err(why) => Some(format!("User: {} is not authorized: {why}", caller.arn)),
                    Ok(checks) => {
                        let checks: Vec<Check> = checks;
                        iam::authorize(&acting, &caller.region, &checks, &mut world.observed)
                            .err()
                            .map(|d| d.message(&caller.arn))
                    }
                }
            }
        }
    };
    match refusal {
        Some(message) => forward::denied(service, &parts.headers, &message),
        None => forwarder.forward(parts, body).await,
    }
}
