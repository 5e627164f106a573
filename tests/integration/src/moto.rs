//! One moto server per test process (DynamoDB, SQS, EventBridge, Secrets Manager over HTTP),
//! and DynamoDB clients and ledger tables on it.
//!
//! The server runs under a small `sh` wrapper whose stdin is a pipe held by this process:
//! when the test process exits (normally, by panic or killed), the pipe closes and the
//! wrapper kills moto. No reliance on destructors of statics.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::Client;
use onboarding::ledger::{schema, Ledger, RequestCounter};
use tokio::sync::OnceCell;

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    /// `http://127.0.0.1:<port>`
    pub url: String,
}

static MOTO: OnceCell<Moto> = OnceCell::const_new();

/// The moto server binary: `$MOTO_SERVER`, else `<repo>/.venv/bin/moto_server`.
pub fn moto_server_path() -> PathBuf {
    match std::env::var_os("MOTO_SERVER") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server"),
    }
}

/// Runs the command in `"$@"` (after the log path) and stops it when our stdin (a pipe held
/// by the test process) reaches EOF; exits when the command does.
const WRAPPER: &str = r#"exec 3<&0
log=$1
shift
"$@" >"$log" 2>&1 </dev/null 3<&- &
p=$!
(cat <&3 >/dev/null; kill "$p" 2>/dev/null) &
exec 3<&-
wait "$p""#;

/// Runs moto's own `moto_server` entry point with one change: DynamoDB requests are served
/// one at a time. moto applies a conditional write as check-then-act without a lock (and
/// makes a new item visible with only its keys before applying the update), so concurrent
/// writes to one item can both pass a condition. Real DynamoDB applies each write to an
/// item atomically; serialising DynamoDB requests gives moto that guarantee. Other services
/// (SQS long polls, ...) stay concurrent.
const SERIALISE_DYNAMODB: &str = r#"
import sys
import threading
import moto.server as server

_lock = threading.Lock()
_run_simple = server.run_simple


def _serialised(app):
    def wsgi(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            with _lock:
                return list(app(environ, start_response))
        return app(environ, start_response)

    return wsgi


def run_simple(host, port, app, **kwargs):
    return _run_simple(host, port, _serialised(app), **kwargs)


server.run_simple = run_simple
server.main(sys.argv[1:])
"#;

/// The interpreter (with its arguments) from the `#!` line of the `moto_server` script.
fn interpreter(script: &std::path::Path) -> Result<Vec<String>, String> {
    let text =
        std::fs::read(script).map_err(|e| format!("cannot read {}: {e}", script.display()))?;
    let first = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(first);
    match line.strip_prefix("#!") {
        Some(rest) if !rest.trim().is_empty() => {
            Ok(rest.split_whitespace().map(str::to_owned).collect())
        }
        _ => Err(format!(
            "{} is not moto's Python entry script (no #! line); point MOTO_SERVER at the \
             moto_server installed by `make venv`",
            script.display()
        )),
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn start() -> Result<Moto, String> {
    let binary = moto_server_path();
    if !binary.is_file() {
        return Err(format!(
            "moto server not found at {}: run `make venv` to install the project's Python tools \
             (or set MOTO_SERVER to a moto_server binary)",
            binary.display()
        ));
    }
    let python = interpreter(&binary)?;
    let mut last_error = String::new();
    // A free port can be taken between our probe and moto's bind: try a few.
    for _ in 0..3 {
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let log = std::env::temp_dir().join(format!("moto-{port}.log"));
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg("moto-server")
            .arg(&log)
            .args(&python)
            .arg("-c")
            .arg(SERIALISE_DYNAMODB)
            .args(["-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start sh for moto: {e}"))?;
        // Held (leaked) for the life of the process: its closing stops moto.
        std::mem::forget(child.stdin.take());

        let started = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(Moto {
                    url: format!("http://127.0.0.1:{port}"),
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                last_error = format!("moto server exited ({status}): {}", output.trim());
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "moto server did not listen on 127.0.0.1:{port} within 60 s (log: {})",
                    log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Err(last_error)
}

/// The test process's moto server, started on first use on a free 127.0.0.1 port.
///
/// Panics (failing the test) with a clear message if moto cannot be started.
pub async fn moto() -> &'static Moto {
    match MOTO.get_or_try_init(start).await {
        Ok(moto) => moto,
        Err(message) => panic!("{message}"),
    }
}

/// A DynamoDB client for `url`: static test credentials, us-east-1, timeouts of 1 s (connect),
/// 2 s (attempt) and 5 s (operation); `counter`, when given, counts every request attempt.
pub fn dynamodb(url: &str, counter: Option<RequestCounter>) -> Client {
    let mut config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url(url)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(5))
                .build(),
        );
    if let Some(counter) = counter {
        config = config.interceptor(counter);
    }
    Client::from_conf(config.build())
}

/// A fresh ledger table named `<prefix>-<random>` on the process's moto, created exactly as
/// the template declares it, with a ledger whose requests are counted (the count starts at
/// zero after the table is created).
pub async fn ledger_table(prefix: &str) -> (Ledger, RequestCounter, String) {
    let url = &moto().await.url;
    let counter = RequestCounter::new();
    let client = dynamodb(url, Some(counter.clone()));
    let table = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
    if let Err(e) = schema::create_table(&client, &table).await {
        panic!("cannot create ledger table {table} on moto at {url}: {e}");
    }
    counter.reset();
    (Ledger::new(client, table.clone()), counter, table)
}
