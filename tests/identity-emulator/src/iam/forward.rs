//! The forwarder in front of moto: a request for a service the emulator does not serve is
//! authorized (its IAM action and resource derived from the request) and then passed on
//! unchanged; moto's response comes back unchanged.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::Check;
use crate::protocol::{xml_escape, HttpResponse};

/// The SigV4 services the emulator answers itself.
const SERVED: &[&str] = &["sso", "mpa", "workspaces-web", "sts"];

/// Forwarded resources' ARNs are in the `aws` partition, like the emulator's.
const PARTITION: &str = "aws";

/// The fixed suffix a secret named without it is matched with (AWS adds 6 random chars).
const SECRET_SUFFIX: &str = "XXXXXX";

/// Largest response taken back from moto.
const MAX_RESPONSE: usize = 64 * 1024 * 1024;

/// Is this request for a service the forwarder passes on?
pub(crate) fn is_forwarded(scope_service: Option<&str>, headers: &HeaderMap) -> bool {
    let ours = header(headers, "x-amz-target")
        .is_some_and(|t| t.starts_with(crate::sso_admin::TARGET_PREFIX));
    !ours && scope_service.is_some_and(|s| !s.is_empty() && !SERVED.contains(&s))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Where a forwarded call acts: the caller's account and the request's Region.
pub(crate) struct Place<'a> {
    pub account: &'a str,
    pub region: &'a str,
    pub management: &'a str,
}

/// The operation of a request: from `X-Amz-Target: <Prefix>.<Op>` (JSON protocols) or the
/// `Action` parameter (query protocol).
fn operation(headers: &HeaderMap, query: &str, body: &[u8]) -> Option<(String, Protocol)> {
    if let Some(target) = header(headers, "x-amz-target") {
        let op = target.rsplit('.').next().filter(|o| !o.is_empty())?;
        return Some((op.to_string(), Protocol::Json));
    }
    let mut params = crate::sts::parse_form(query.as_bytes());
    params.extend(crate::sts::parse_form(body));
    params
        .get("Action")
        .filter(|a| !a.is_empty())
        .map(|a| (a.clone(), Protocol::Query))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Json,
    Query,
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The IAM checks of a forwarded request, or why none can be derived.
pub(crate) fn checks(
    service: &str,
    headers: &HeaderMap,
    path: &str,
    query: &str,
    body: &[u8],
    at: &Place<'_>,
) -> Result<Vec<Check>, String> {
    let Some((op, protocol)) = operation(headers, query, body) else {
        return Err(format!(
            "the emulator cannot tell the {service} operation of this request (no X-Amz-Target, no Action)"
        ));
    };
    let (account, region) = (at.account, at.region);
    let action = format!("{service}:{op}");
    let one = |resource: String| Ok(vec![Check::new(action.clone(), resource)]);
    match (service, protocol) {
        ("dynamodb", Protocol::Json) => Ok(dynamodb(&op, &json(body), account, region)),
        ("sqs", _) => {
            let params = match protocol {
                Protocol::Json => json(body),
                Protocol::Query => {
                    let mut p = crate::sts::parse_form(query.as_bytes());
                    p.extend(crate::sts::parse_form(body));
                    serde_json::to_value(p).unwrap_or(Value::Null)
                }
            };
            let queue = text(&params, "QueueUrl")
                .map(|u| u.trim_end_matches('/').rsplit('/').next().unwrap_or(u))
                .or_else(|| text(&params, "QueueName"))
                .or_else(|| {
                    // the query protocol may post to the queue URL itself
                    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
                    (segments.len() == 2).then(|| segments[1])
                });
            let resource = match queue {
                Some(name) => format!("arn:{PARTITION}:sqs:{region}:{account}:{name}"),
                None => "*".to_string(),
            };
            // SQS authorizes its batch operations by the single action (the Service
            // Authorization Reference lists no `...Batch` action): a policy granting
            // sqs:ChangeMessageVisibility allows ChangeMessageVisibilityBatch.
            let single = op.strip_suffix("Batch").unwrap_or(&op);
            Ok(vec![Check::new(format!("sqs:{single}"), resource)])
        }
        ("events", Protocol::Json) => {
            let input = json(body);
            let bus = |name: &str| {
                if name.starts_with("arn:") {
                    name.to_string()
                } else {
                    format!("arn:{PARTITION}:events:{region}:{account}:event-bus/{name}")
                }
            };
            if op == "PutEvents" {
                let mut buses: Vec<String> = input
                    .get("Entries")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|e| bus(text(e, "EventBusName").unwrap_or("default")))
                    .collect();
                buses.dedup();
                if buses.is_empty() {
                    buses.push(bus("default"));
                }
                return Ok(buses
                    .into_iter()
                    .map(|b| Check::new(action.clone(), b))
                    .collect());
            }
            one(text(&input, "EventBusName")
                .map(bus)
                .unwrap_or_else(|| "*".to_string()))
        }
        ("secretsmanager", Protocol::Json) => {
            let input = json(body);
            let secret = text(&input, "SecretId").or_else(|| text(&input, "Name"));
            one(match secret {
                Some(arn) if arn.starts_with("arn:") => arn.to_string(),
                Some(name) => format!(
                    "arn:{PARTITION}:secretsmanager:{region}:{account}:secret:{name}-{SECRET_SUFFIX}"
                ),
                None => "*".to_string(),
            })
        }
        ("organizations", Protocol::Json) => {
            let input = json(body);
            match (op.as_str(), text(&input, "AccountId")) {
                ("DescribeAccount", Some(id)) => one(format!(
                    "arn:{PARTITION}:organizations::{}:account/o-*/{id}",
                    at.management
                )),
                _ => one("*".to_string()),
            }
        }
        // anything else: the action on `*` (no resource-level permissions assumed)
        _ => one("*".to_string()),
    }
}

/// DynamoDB: the table (or index) of each item; transactions are authorized per item with
/// the item's own action (there is no `dynamodb:TransactWriteItems` IAM action).
fn dynamodb(op: &str, input: &Value, account: &str, region: &str) -> Vec<Check> {
    let table = |name: &str| {
        if name.starts_with("arn:") {
            name.to_string()
        } else {
            format!("arn:{PARTITION}:dynamodb:{region}:{account}:table/{name}")
        }
    };
    let action = |a: &str| format!("dynamodb:{a}");
    let mut checks = Vec::new();
    match op {
        "BatchWriteItem" | "BatchGetItem" => {
            for name in input
                .get("RequestItems")
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|m| m.keys())
            {
                checks.push(Check::new(action(op), table(name)));
            }
        }
        "TransactWriteItems" | "TransactGetItems" => {
            let items = input.get("TransactItems").and_then(Value::as_array);
            for item in items.into_iter().flatten() {
                let kinds = [
                    ("Put", "PutItem"),
                    ("Update", "UpdateItem"),
                    ("Delete", "DeleteItem"),
                    ("ConditionCheck", "ConditionCheckItem"),
                    ("Get", "GetItem"),
                ];
                for (kind, item_action) in kinds {
                    if let Some(name) = item.get(kind).and_then(|i| text(i, "TableName")) {
                        checks.push(Check::new(action(item_action), table(name)));
                    }
                }
            }
        }
        _ => {
            let resource = match text(input, "TableName") {
                Some(name) => match (op, text(input, "IndexName")) {
                    ("Query" | "Scan", Some(index)) => format!("{}/index/{index}", table(name)),
                    _ => table(name),
                },
                None => "*".to_string(),
            };
            checks.push(Check::new(action(op), resource));
        }
    }
    if checks.is_empty() {
        checks.push(Check::new(action(op), "*"));
    }
    checks.dedup();
    checks
}

/// The service's AccessDenied: JSON protocols `AccessDeniedException` (400, as DynamoDB,
/// EventBridge, Secrets Manager and Organizations answer it; SQS: `AccessDenied` 403), the
/// query protocol an XML `AccessDenied` (403).
pub(crate) fn denied(service: &str, headers: &HeaderMap, message: &str) -> HttpResponse {
    let request_id = crate::ids::request_id();
    let json_protocol = headers.get("x-amz-target").is_some();
    let (status, body, content_type, code) = if json_protocol {
        let (status, code) = if service == "sqs" {
            (403, "AccessDenied")
        } else {
            (400, "AccessDeniedException")
        };
        let body = serde_json::json!({
            "__type": format!("com.amazon.coral.service#{code}"),
            "message": message,
            "Message": message,
        });
        let content_type = header(headers, "content-type").unwrap_or("application/x-amz-json-1.0");
        (status, body.to_string(), content_type.to_string(), code)
    } else {
        let body = format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>\
             <Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
            xml_escape(message)
        );
        (403, body, "text/xml".to_string(), "AccessDenied")
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    let h = resp.headers_mut();
    for (name, value) in [
        ("content-type", content_type.as_str()),
        ("x-amzn-requestid", request_id.as_str()),
        ("x-amzn-errortype", code),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    }
    if service == "sqs" {
        h.insert(
            "x-amzn-query-error",
            HeaderValue::from_static("AccessDenied;Sender"),
        );
    }
    resp
}

/// moto's URL and a pooled HTTP/1.1 client.
pub(crate) struct Forwarder {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

fn bad_gateway(message: String) -> HttpResponse {
    crate::protocol::admin_json(502, &serde_json::json!({"message": message}))
}

impl Forwarder {
    pub(crate) fn new(url: &str) -> Forwarder {
        Forwarder {
            base: url.trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Send the request on unchanged and return moto's answer unchanged (re-framed: the
    /// body is whole, so `Transfer-Encoding` is dropped both ways).
    pub(crate) async fn forward(&self, parts: &http::request::Parts, body: Bytes) -> HttpResponse {
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let uri = format!("{}{path}", self.base);
        let mut builder = Request::builder().method(parts.method.clone()).uri(&uri);
        for (name, value) in &parts.headers {
            if name != http::header::TRANSFER_ENCODING {
                builder = builder.header(name, value);
            }
        }
        let request = match builder.body(Full::new(body)) {
            Ok(r) => r,
            Err(e) => return bad_gateway(format!("cannot forward to {uri}: {e}")),
        };
        let response = match self.client.request(request).await {
            Ok(r) => r,
            Err(e) => return bad_gateway(format!("forwarding to {} failed: {e}", self.base)),
        };
        let (mut head, incoming) = response.into_parts();
        let bytes = match http_body_util::Limited::new(incoming, MAX_RESPONSE)
            .collect()
            .await
        {
            Ok(c) => c.to_bytes(),
            Err(e) => return bad_gateway(format!("reading {}'s response failed: {e}", self.base)),
        };
        head.headers.remove(http::header::TRANSFER_ENCODING);
        Response::from_parts(head, Full::new(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place() -> Place<'static> {
        Place {
            account: "111111111111",
            region: "us-east-1",
            management: "111111111111",
        }
    }

    fn target(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-amz-target", HeaderValue::from_str(t).unwrap());
        h
    }

    fn derive(service: &str, t: &str, body: &str) -> Vec<(String, String)> {
        checks(service, &target(t), "/", "", body.as_bytes(), &place())
            .unwrap()
            .into_iter()
            .map(|c| (c.action, c.resource))
            .collect()
    }

    fn pair(a: &str, r: &str) -> (String, String) {
        (a.to_string(), r.to_string())
    }

    #[test]
    fn dynamodb_tables_indexes_batches_and_transactions() {
        let t = "arn:aws:dynamodb:us-east-1:111111111111:table/Ledger";
        assert_eq!(
            derive(
                "dynamodb",
                "DynamoDB_20120810.UpdateItem",
                r#"{"TableName": "Ledger"}"#
            ),
            vec![pair("dynamodb:UpdateItem", t)]
        );
        assert_eq!(
            derive(
                "dynamodb",
                "DynamoDB_20120810.Query",
                r#"{"TableName": "Ledger", "IndexName": "ByStatus"}"#
            ),
            vec![pair("dynamodb:Query", &format!("{t}/index/ByStatus"))]
        );
        assert_eq!(
            derive(
                "dynamodb",
                "DynamoDB_20120810.GetItem",
                &format!(r#"{{"TableName": "{t}"}}"#)
            ),
            vec![pair("dynamodb:GetItem", t)]
        );
        assert_eq!(
            derive(
                "dynamodb",
                "DynamoDB_20120810.BatchGetItem",
                r#"{"RequestItems": {"Ledger": {}, "Other": {}}}"#
            ),
            vec![
                pair("dynamodb:BatchGetItem", t),
                pair(
                    "dynamodb:BatchGetItem",
                    "arn:aws:dynamodb:us-east-1:111111111111:table/Other"
                )
            ]
        );
        assert_eq!(
            derive(
                "dynamodb",
                "DynamoDB_20120810.TransactWriteItems",
                r#"{"TransactItems": [{"Put": {"TableName": "Ledger"}}, {"ConditionCheck": {"TableName": "Ledger"}}]}"#
            ),
            vec![
                pair("dynamodb:PutItem", t),
                pair("dynamodb:ConditionCheckItem", t)
            ]
        );
        assert_eq!(
            derive("dynamodb", "DynamoDB_20120810.ListTables", "{}"),
            vec![pair("dynamodb:ListTables", "*")]
        );
        // a body that is not JSON still gets a decision
        assert_eq!(
            derive("dynamodb", "DynamoDB_20120810.GetItem", "{"),
            vec![pair("dynamodb:GetItem", "*")]
        );
    }

    #[test]
    fn sqs_events_secrets_and_organizations() {
        let q = "arn:aws:sqs:us-east-1:111111111111:work";
        assert_eq!(
            derive(
                "sqs",
                "AmazonSQS.ChangeMessageVisibility",
                r#"{"QueueUrl": "http://localhost:4566/111111111111/work"}"#
            ),
            vec![pair("sqs:ChangeMessageVisibility", q)]
        );
        assert_eq!(
            derive("sqs", "AmazonSQS.GetQueueUrl", r#"{"QueueName": "work"}"#),
            vec![pair("sqs:GetQueueUrl", q)]
        );
        assert_eq!(
            derive(
                "sqs",
                "AmazonSQS.ChangeMessageVisibilityBatch",
                r#"{"QueueUrl": "http://localhost/111111111111/work", "Entries": []}"#
            ),
            vec![pair("sqs:ChangeMessageVisibility", q)]
        );
        let query = checks(
            "sqs",
            &HeaderMap::new(),
            "/111111111111/work",
            "",
            b"Action=ReceiveMessage&MaxNumberOfMessages=1",
            &place(),
        )
        .unwrap();
        assert_eq!(query, vec![Check::new("sqs:ReceiveMessage", q)]);
        assert_eq!(
            derive(
                "events",
                "AWSEvents.PutEvents",
                r#"{"Entries": [{"EventBusName": "bus"}, {}]}"#
            ),
            vec![
                pair(
                    "events:PutEvents",
                    "arn:aws:events:us-east-1:111111111111:event-bus/bus"
                ),
                pair(
                    "events:PutEvents",
                    "arn:aws:events:us-east-1:111111111111:event-bus/default"
                )
            ]
        );
        assert_eq!(
            derive(
                "secretsmanager",
                "secretsmanager.GetSecretValue",
                r#"{"SecretId": "idp/corp"}"#
            ),
            vec![pair(
                "secretsmanager:GetSecretValue",
                "arn:aws:secretsmanager:us-east-1:111111111111:secret:idp/corp-XXXXXX"
            )]
        );
        assert_eq!(
            derive(
                "organizations",
                "AWSOrganizationsV20161128.DescribeAccount",
                r#"{"AccountId": "222222222222"}"#
            ),
            vec![pair(
                "organizations:DescribeAccount",
                "arn:aws:organizations::111111111111:account/o-*/222222222222"
            )]
        );
        assert!(checks("s3", &HeaderMap::new(), "/b/k", "", b"", &place()).is_err());
    }

    #[test]
    fn only_other_services_are_forwarded() {
        assert!(is_forwarded(Some("dynamodb"), &HeaderMap::new()));
        assert!(!is_forwarded(Some("sts"), &HeaderMap::new()));
        assert!(!is_forwarded(None, &HeaderMap::new()));
        assert!(!is_forwarded(
            Some("identitystore"),
            &target("SWBExternalService.CreateInstance")
        ));
    }
}
