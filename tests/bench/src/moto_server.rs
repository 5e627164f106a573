//! A moto server of the backfill figure's own, with patches that make it answer in time at
//! thousands of accounts and messages without changing what it answers. moto 5 costs, where
//! AWS costs nothing like it:
//!
//! - Every request: the caller's account is found by looking its access key up in the IAM
//!   backend of every account moto knows, in every partition: 2,001 accounts x 8 partitions
//!   once the organization exists (a `GetItem` went from 2.5 ms to 11.7 ms on a 2-core
//!   machine, and far more under load). Every caller here uses the default account's key,
//!   so the server is started with `MOTO_ACCOUNT_ID` set to that account (moto's own
//!   setting; the answer is the same).
//! - `ReceiveMessage`: for every message it returns, a retention check that computes every
//!   queue attribute three times over (each approximate count a scan of the whole queue):
//!   nine scans of a 2,000-message queue per message received. Patched: the check reads the
//!   queue's retention period.
//! - `GetQueueAttributes`: the same attribute computation three times per name asked for.
//!   Patched: computed once per call.
//! - `SendMessage` (each event EventBridge delivers to a queue): every queue attribute
//!   computed, counts included, to read `ContentBasedDeduplication`. Patched: within a send
//!   the attributes are computed without the three counts (moto's own code otherwise).
//! - EventBridge delivery to a target: nine JSONPath expressions (the default input
//!   template) compiled for every event and target, each a new parser generator run.
//!   Patched: compiled once, kept.
//!
//! And one fix of thread safety, like the shared moto's for DynamoDB: a queue's delete
//! rebuilds its message list without the queue's lock, so a concurrent send or delete can be
//! lost (the likely cause of a batch whose ten records, acknowledged, came back 360 s later
//! in a run without this fix), and two concurrent receives can return the same message.
//! Patched: receives and deletes hold the queue's own lock, as sends already do (a long
//! poll releases it while it waits).
//!
//! Request lines are not logged. DynamoDB requests are served one at a time, as in the
//! process's shared moto (`integration_tests::moto`), for the atomicity of conditional
//! writes. The server stops when this process ends (the wrapper's stdin pipe closes),
//! however it ends.

use std::net::TcpListener;
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `"$@"` (after the log path) until our stdin reaches EOF (as the shared moto does).
const WRAPPER: &str = r#"exec 3<&0
log=$1
shift
"$@" >"$log" 2>&1 </dev/null 3<&- &
p=$!
(cat <&3 >/dev/null; kill "$p" 2>/dev/null) &
exec 3<&-
wait "$p""#;

const PATCHED: &str = r#"
import functools
import logging
import sys
import threading

import json

import jsonpath_ng.ext
import moto.server as server
import moto.sqs.models as sqs
from moto.core.utils import camelcase_to_underscores, unix_time
from moto.sqs.exceptions import InvalidAttributeName

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


def retention_ok(self, queue_name, message):
    queue = self.get_queue(queue_name)
    retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
    return retain_until > unix_time()


def get_queue_attributes(self, queue_name, attribute_names):
    queue = self.get_queue(queue_name)
    if not attribute_names:
        return {}
    valid_names = ["All"] + queue.BASE_ATTRIBUTES + queue.FIFO_ATTRIBUTES + queue.KMS_ATTRIBUTES
    invalid_name = next((n for n in attribute_names if n not in valid_names), None)
    if invalid_name or invalid_name == "":
        raise InvalidAttributeName(invalid_name)
    attributes = queue.attributes
    if "All" in attribute_names:
        return attributes
    return {
        n: attributes[n]
        for n in attribute_names
        if n in attributes and attributes.get(n) is not None
    }


logging.getLogger("werkzeug").setLevel(logging.WARNING)
_COUNTS = {
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesDelayed",
    "ApproximateNumberOfMessagesNotVisible",
}
_local = threading.local()


def attributes(self):
    # moto 5.2.5's Queue.attributes, without the counts inside SendMessage
    names = self.BASE_ATTRIBUTES
    if getattr(_local, "no_counts", False):
        names = [a for a in names if a not in _COUNTS]
    result = {}
    for attribute in names:
        result[attribute] = getattr(self, camelcase_to_underscores(attribute))
    if self.fifo_queue:
        for attribute in self.FIFO_ATTRIBUTES:
            result[attribute] = getattr(self, camelcase_to_underscores(attribute))
    if self.kms_master_key_id:
        for attribute in self.KMS_ATTRIBUTES:
            result[attribute] = getattr(self, camelcase_to_underscores(attribute))
    if self.policy:
        result["Policy"] = self.policy
    if self.redrive_policy:
        result["RedrivePolicy"] = json.dumps(self.redrive_policy)
    for key in result:
        if isinstance(result[key], bool):
            result[key] = str(result[key]).lower()
    return result


_send_message = sqs.SQSBackend.send_message


def send_message(self, *args, **kwargs):
    _local.no_counts = True
    try:
        return _send_message(self, *args, **kwargs)
    finally:
        _local.no_counts = False


_queue_delete = sqs.Queue.delete_message


def queue_delete(self, receipt_handle):
    with self._messages_lock:
        return _queue_delete(self, receipt_handle)


_receive_message = sqs.SQSBackend.receive_message


def receive_message(self, queue_name, *args, **kwargs):
    # Condition.wait inside (the long poll) releases the re-entrant lock while it waits.
    with self.get_queue(queue_name)._messages_lock:
        return _receive_message(self, queue_name, *args, **kwargs)


server.run_simple = run_simple
sqs.Queue.delete_message = queue_delete
sqs.SQSBackend.receive_message = receive_message
sqs.Queue.attributes = property(attributes)
sqs.SQSBackend.send_message = send_message
sqs.SQSBackend.is_message_valid_based_on_retention_period = retention_ok
sqs.SQSBackend.get_queue_attributes = get_queue_attributes
jsonpath_ng.ext.parse = functools.lru_cache(maxsize=None)(jsonpath_ng.ext.parse)
server.main(sys.argv[1:])
"#;

/// moto's default account: where credentials it did not issue act.
const DEFAULT_ACCOUNT: &str = "123456789012";

pub struct PatchedMoto {
    pub url: String,
    /// Closing it stops the server.
    _stdin: ChildStdin,
}

/// The interpreter (with its arguments) from the `#!` line of the `moto_server` script.
fn interpreter() -> Result<Vec<String>, String> {
    let script = integration_tests::moto::moto_server_path();
    let text =
        std::fs::read(&script).map_err(|e| format!("cannot read {}: {e}", script.display()))?;
    let first = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(first);
    match line.strip_prefix("#!") {
        Some(rest) if !rest.trim().is_empty() => {
            Ok(rest.split_whitespace().map(str::to_owned).collect())
        }
        _ => Err(format!(
            "{} has no #! line: run `make venv`",
            script.display()
        )),
    }
}

pub async fn start(log: &std::path::Path) -> Result<PatchedMoto, String> {
    let python = interpreter()?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(WRAPPER)
        .arg("moto-server")
        .arg(log)
        .args(&python)
        .arg("-c")
        .arg(PATCHED)
        .args(["-H", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .env("MOTO_ACCOUNT_ID", DEFAULT_ACCOUNT)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start sh for moto: {e}"))?;
    let stdin = child
        .stdin
        .take()
        .ok_or("no stdin pipe to moto's wrapper")?;
    let started = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(PatchedMoto {
                url: format!("http://127.0.0.1:{port}"),
                _stdin: stdin,
            });
        }
        if let Ok(Some(status)) = child.try_wait() {
            let output = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!("moto exited ({status}): {}", output.trim()));
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "moto did not listen on 127.0.0.1:{port} within 60 s (log: {})",
                log.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
