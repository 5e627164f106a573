//! A minimal Lambda Runtime API on 127.0.0.1, serving one invocation per armed run and
//! recording when the function first asked for work (`GET .../invocation/next`, the end of
//! its init phase) and when its answer arrived (`POST .../invocation/<id>/response`).
//!
//! Runs are sequential: `arm` sets up the next invocation; the function process of the
//! previous run has been killed by then. A second `/next` from the same process (after it
//! answered) is held open, as Lambda does between invocations.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const INVOCATION: &str = "/2018-06-01/runtime/invocation/";
const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";

/// How long the invocation's deadline lies after its delivery.
const TIMEOUT: Duration = Duration::from_secs(60);

/// What the function said about the armed invocation.
#[derive(Clone, Debug)]
pub struct Reply {
    pub at: Instant,
    /// `false` for `POST .../error`.
    pub ok: bool,
    pub body: Bytes,
}

#[derive(Default)]
struct Invocation {
    function: String,
    request_id: String,
    /// The event, until it has been delivered.
    payload: Option<Bytes>,
    first_next: Option<Instant>,
    reply: Option<Reply>,
    init_error: Option<String>,
}

#[derive(Clone)]
pub struct RuntimeApi {
    addr: SocketAddr,
    state: Arc<Mutex<Invocation>>,
    changed: Arc<Notify>,
}

impl RuntimeApi {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let api = RuntimeApi {
            addr: listener.local_addr()?,
            state: Arc::default(),
            changed: Arc::default(),
        };
        let server = api.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let api = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let api = api.clone();
                        async move { Ok::<_, Infallible>(api.serve(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(api)
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The next process to ask for work gets `payload` as invocation `request_id`.
    pub fn arm(&self, function: &str, request_id: &str, payload: Bytes) {
        *self.lock() = Invocation {
            function: function.to_string(),
            request_id: request_id.to_string(),
            payload: Some(payload),
            ..Invocation::default()
        };
    }

    pub fn first_next(&self) -> Option<Instant> {
        self.lock().first_next
    }

    pub fn reply(&self) -> Option<Reply> {
        self.lock().reply.clone()
    }

    pub fn init_error(&self) -> Option<String> {
        self.lock().init_error.clone()
    }

    /// Resolves when something was recorded (or at once if it was since the last wait).
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    fn lock(&self) -> MutexGuard<'_, Invocation> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn serve(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let arrived = Instant::now();
        let path = request.uri().path().to_string();
        let method = request.method().clone();

        if method == Method::GET && path == NEXT {
            let delivery = {
                let mut state = self.lock();
                state.first_next.get_or_insert(arrived);
                let function = state.function.clone();
                let request_id = state.request_id.clone();
                state
                    .payload
                    .take()
                    .map(|payload| (function, request_id, payload))
            };
            self.changed.notify_one();
            return match delivery {
                Some((function, request_id, payload)) => {
                    invocation(&function, &request_id, payload)
                }
                None => {
                    // Nothing more for this process: hold the poll like Lambda does while
                    // the environment is frozen. The process is killed long before this ends.
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    status(StatusCode::SERVICE_UNAVAILABLE, "no invocation")
                }
            };
        }

        if method == Method::POST && path == INIT_ERROR {
            let body = body_of(request).await;
            self.lock().init_error = Some(String::from_utf8_lossy(&body).into_owned());
            self.changed.notify_one();
            return status(StatusCode::ACCEPTED, r#"{"status":"OK"}"#);
        }

        if method == Method::POST {
            if let Some(rest) = path.strip_prefix(INVOCATION) {
                let ok = rest.ends_with("/response");
                if ok || rest.ends_with("/error") {
                    let body = body_of(request).await;
                    let at = Instant::now();
                    let mut state = self.lock();
                    if state.reply.is_none() {
                        state.reply = Some(Reply { at, ok, body });
                    }
                    drop(state);
                    self.changed.notify_one();
                    return status(StatusCode::ACCEPTED, r#"{"status":"OK"}"#);
                }
            }
        }
        status(StatusCode::NOT_FOUND, "unknown route")
    }
}

async fn body_of(request: Request<Incoming>) -> Bytes {
    request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

fn invocation(function: &str, request_id: &str, payload: Bytes) -> Response<Full<Bytes>> {
    let deadline = (SystemTime::now() + TIMEOUT)
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let arn = format!("arn:aws:lambda:us-east-1:111111111111:function:{function}");
    Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/json")
        .header("Lambda-Runtime-Aws-Request-Id", request_id)
        .header("Lambda-Runtime-Deadline-Ms", deadline.to_string())
        .header("Lambda-Runtime-Invoked-Function-Arn", arn)
        .header(
            "Lambda-Runtime-Trace-Id",
            "Root=1-67c0a1b2-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=0",
        )
        .body(Full::new(payload))
        .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR, "bad response"))
}

fn status(code: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = code;
    response
}
