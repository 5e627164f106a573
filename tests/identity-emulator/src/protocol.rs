//! The four wire protocols' success and error responses.
//!
//! - SSO Admin, awsJson1_1: `{"__type": code, "Message": ...}`
//! - MPA, restJson1: `{"Message": ...}`
//! - WorkSpaces Web, restJson1: `{"message": ...}` (+ `reason`/`fieldList`, `resourceId`, ...),
//!   `Retry-After` on throttling
//! - STS, awsQuery: `<ErrorResponse><Error><Type/><Code/><Message/></Error>...`
//!
//! Every JSON error also carries the code in `x-amzn-errortype` (what the SDK reads first).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Map, Value};

use crate::smithy::InputError;

/// The services, each with its own protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    SsoAdmin,
    Mpa,
    WorkspacesWeb,
    Sts,
}

/// A response body of an operation.
#[derive(Debug, Clone)]
pub(crate) enum Output {
    Json(Value),
    Xml(String),
}

/// An error as the service would return it.
#[derive(Debug, Clone)]
pub(crate) struct ServiceError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Extra members of the error structure (e.g. WorkSpaces Web `resourceId`).
    pub extra: Map<String, Value>,
}

impl ServiceError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ServiceError {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
        }
    }

    pub(crate) fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_string(), value);
        self
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        ServiceError::new(400, "ValidationException", message)
    }

    pub(crate) fn access_denied(message: impl Into<String>) -> Self {
        ServiceError::new(403, "AccessDeniedException", message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        ServiceError::new(409, "ConflictException", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        ServiceError::new(404, "ResourceNotFoundException", message)
    }

    pub(crate) fn quota(message: impl Into<String>) -> Self {
        ServiceError::new(402, "ServiceQuotaExceededException", message)
    }

    pub(crate) fn throttling() -> Self {
        ServiceError::new(429, "ThrottlingException", "Rate exceeded")
    }

    pub(crate) fn internal() -> Self {
        ServiceError::new(
            500,
            "InternalServerException",
            "The request processing has failed because of an unknown error, exception or failure.",
        )
    }

    pub(crate) fn unknown_operation(message: impl Into<String>) -> Self {
        ServiceError::new(404, "UnknownOperationException", message)
    }

    pub(crate) fn serialization(message: impl Into<String>) -> Self {
        ServiceError::new(400, "SerializationException", message)
    }

    /// The error for an input refused by the model, in `service`'s terms.
    pub(crate) fn from_input(service: Service, err: &InputError) -> Self {
        match (service, err) {
            (Service::WorkspacesWeb, InputError::Validation(violations)) => {
                let fields: Vec<Value> = violations
                    .iter()
                    .map(|v| json!({"name": v.path, "message": v.message}))
                    .collect();
                ServiceError::validation(err.message())
                    .with("reason", json!("fieldValidationFailed"))
                    .with("fieldList", Value::Array(fields))
            }
            (Service::WorkspacesWeb, InputError::Serialization(m)) => {
                ServiceError::validation(m.clone()).with("reason", json!("cannotParse"))
            }
            (_, InputError::Validation(_)) => ServiceError::validation(err.message()),
            (_, InputError::Serialization(m)) => ServiceError::serialization(m.clone()),
        }
    }
}

pub(crate) type HttpResponse = Response<Full<Bytes>>;

fn build(status: u16, content_type: &str, body: Vec<u8>, request_id: &str) -> HttpResponse {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        headers.insert(http::header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", v.clone());
        headers.insert("x-amz-request-id", v);
    }
    resp
}

fn json_content_type(service: Service) -> &'static str {
    match service {
        Service::SsoAdmin => "application/x-amz-json-1.1",
        _ => "application/json",
    }
}

pub(crate) fn success(service: Service, output: Output, request_id: &str) -> HttpResponse {
    match output {
        Output::Json(v) => build(
            200,
            json_content_type(service),
            serde_json::to_vec(&v).unwrap_or_default(),
            request_id,
        ),
        Output::Xml(x) => build(200, "text/xml", x.into_bytes(), request_id),
    }
}

pub(crate) fn error(service: Service, err: &ServiceError, request_id: &str) -> HttpResponse {
    let mut resp = match service {
        Service::Sts => {
            let kind = if err.status >= 500 {
                "Receiver"
            } else {
                "Sender"
            };
            let body = format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                 <Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error>\
                 <RequestId>{}</RequestId></ErrorResponse>",
                xml_escape(err.code),
                xml_escape(&err.message),
                xml_escape(request_id)
            );
            build(err.status, "text/xml", body.into_bytes(), request_id)
        }
        _ => {
            let mut body = Map::new();
            match service {
                Service::SsoAdmin => {
                    body.insert("__type".into(), json!(err.code));
                    body.insert("Message".into(), json!(err.message));
                }
                Service::Mpa => {
                    body.insert("Message".into(), json!(err.message));
                }
                _ => {
                    body.insert("message".into(), json!(err.message));
                }
            }
            for (k, v) in &err.extra {
                body.insert(k.clone(), v.clone());
            }
            let bytes = serde_json::to_vec(&Value::Object(body)).unwrap_or_default();
            build(err.status, json_content_type(service), bytes, request_id)
        }
    };
    if let Ok(v) = HeaderValue::from_str(err.code) {
        resp.headers_mut().insert("x-amzn-errortype", v);
    }
    if service == Service::WorkspacesWeb && err.status == 429 {
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
    }
    resp
}

pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(ch),
        }
    }
    out
}

/// A plain JSON response of the admin API.
pub(crate) fn admin_json(status: u16, value: &Value) -> HttpResponse {
    build(
        status,
        "application/json",
        serde_json::to_vec_pretty(value).unwrap_or_default(),
        &crate::ids::request_id(),
    )
}
