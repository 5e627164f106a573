//! `cargo lambda watch`: the Lambda Runtime API on 127.0.0.1, one per function (function name
//! = binary name), each with that function's environment alone; and `cargo lambda invoke
//! --data-file`, the offline stand-in for `sam local invoke -e`.
//!
//! One watch per function because the functions differ in their credentials (each signs as
//! its own role) and watch gives every function it serves the same `--env-file`. Its only
//! per-function settings, `[package.metadata.lambda.env]` in the functions' manifests, are
//! static, are applied after `--env-file` (nothing can override them) and would replace the
//! credentials of anyone running `cargo lambda watch` against a real account. A watch costs
//! about 0.1 s to start and 16 MB; the function processes are one per function either way.
//!
//! Facts this relies on (cargo-lambda 1.9): on a function's first invocation, watch runs
//! `cargo run --bin <name>` from the workspace root (a debug build, into `CARGO_TARGET_DIR`
//! when set; nothing is rebuilt when the binary is fresh) and keeps that process for later
//! invocations; `--ignore-changes` stops it from rebuilding when sources change; the
//! functions get watch's own environment plus `--env-file`; on SIGTERM watch stops the
//! function processes it started (they run in sessions of their own). A function that exits
//! at init (a missing setting) never answers: the invocation ends at watch's `--timeout`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::process::Supervised;
use super::tools::Tools;

/// What one invocation returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The function's JSON reply.
    Value(Value),
    /// The invocation failed: the function returned an error (a retryable failure of a direct
    /// invocation, or a whole SQS batch to retry), or it crashed or timed out.
    Error(String),
}

impl Reply {
    /// `batchItemFailures[].itemIdentifier` of an SQS reply (`None` if not an SQS reply).
    pub fn batch_failures(&self) -> Option<Vec<String>> {
        let Reply::Value(value) = self else {
            return None;
        };
        let failures = value.get("batchItemFailures")?.as_array()?;
        Some(
            failures
                .iter()
                .filter_map(|f| f.get("itemIdentifier")?.as_str().map(str::to_string))
                .collect(),
        )
    }

    /// `status` of a direct invocation's reply.
    pub fn status(&self) -> Option<&str> {
        match self {
            Reply::Value(value) => value.get("status")?.as_str(),
            Reply::Error(_) => None,
        }
    }

    /// One line for humans.
    pub fn summary(&self) -> String {
        match self {
            Reply::Error(e) => format!("error: {}", first_line(e)),
            Reply::Value(value) => {
                if let Some(failures) = self.batch_failures() {
                    if failures.is_empty() {
                        "batchItemFailures: []".into()
                    } else {
                        format!("batchItemFailures: [{}]", failures.join(", "))
                    }
                } else {
                    let status = value.get("status").and_then(Value::as_str).unwrap_or("?");
                    match status {
                        "ready" => format!(
                            "ready ({})",
                            value.get("how").and_then(Value::as_str).unwrap_or("?")
                        ),
                        other => other.to_string(),
                    }
                }
            }
        }
    }
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// A running `cargo lambda watch` serving one function.
pub struct Watch {
    /// The function it serves (it would start any other binary too: [`Watch::invoke`]
    /// refuses to ask it).
    pub function: String,
    pub port: u16,
    pub log: PathBuf,
    server: Supervised,
    cargo_lambda: PathBuf,
    path_env: std::ffi::OsString,
}

impl Watch {
    /// Starts `cargo lambda watch -A 127.0.0.1 -P <free port> --ignore-changes` in `root` for
    /// `function`, with its environment from `env_file`; waits until it listens. `timeout`:
    /// how long an invocation may take (the first one includes `cargo run`'s check of the
    /// build).
    pub async fn start(
        tools: &Tools,
        root: &Path,
        function: &str,
        env_file: &Path,
        log: &Path,
        timeout: Duration,
    ) -> Result<Watch, String> {
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            let mut command = Command::new(&tools.cargo_lambda);
            command
                .args(["lambda", "watch", "-A", "127.0.0.1", "-P"])
                .arg(port.to_string())
                .arg("--ignore-changes")
                .arg("--timeout")
                .arg(timeout.as_secs().max(1).to_string())
                .arg("--env-file")
                .arg(env_file)
                .current_dir(root)
                .env("PATH", tools.path_env())
                .env("CARGO", &tools.cargo)
                .env("CARGO_TERM_COLOR", "never")
                .env("NO_COLOR", "1");
            // Nothing of the caller's AWS setup may leak into the functions: only the env file.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("AWS_") {
                    command.env_remove(key);
                }
            }
            let mut server =
                Supervised::spawn(&format!("cargo lambda watch ({function})"), command, log)?;
            let started = Instant::now();
            loop {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    return Ok(Watch {
                        function: function.to_string(),
                        port,
                        log: log.to_path_buf(),
                        server,
                        cargo_lambda: tools.cargo_lambda.clone(),
                        path_env: tools.path_env(),
                    });
                }
                if let Some(status) = server.exited() {
                    last = format!(
                        "cargo lambda watch exited ({status}) before listening on 127.0.0.1:{port}:\n{}",
                        tail(log, 15)
                    );
                    break;
                }
                if started.elapsed() > Duration::from_secs(60) {
                    return Err(format!(
                        "cargo lambda watch did not listen on 127.0.0.1:{port} within 60 s (log: {})",
                        log.display()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // A port taken between our probe and its bind: try another.
            if !last.contains("in use") {
                return Err(last);
            }
        }
        Err(last)
    }

    /// `cargo lambda invoke <function> -A 127.0.0.1 -P <port> --data-file <file> -o json`.
    /// `Err` only when the invoke command itself cannot run or exceeds `limit`, or when
    /// `function` is not the one this watch serves.
    pub async fn invoke(
        &mut self,
        function: &str,
        data_file: &Path,
        limit: Duration,
    ) -> Result<Reply, String> {
        if function != self.function {
            return Err(format!(
                "the watch on 127.0.0.1:{} serves {}, not {function}",
                self.port, self.function
            ));
        }
        if let Some(status) = self.server.exited() {
            return Err(format!(
                "cargo lambda watch has stopped ({status}):\n{}",
                tail(&self.log, 15)
            ));
        }
        let mut command = tokio::process::Command::new(&self.cargo_lambda);
        command
            .args(["lambda", "invoke", function, "-A", "127.0.0.1", "-P"])
            .arg(self.port.to_string())
            .arg("--data-file")
            .arg(data_file)
            .args(["-o", "json", "--color", "never"])
            .env("PATH", &self.path_env)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let output = match tokio::time::timeout(limit, command.output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => return Err(format!("cannot run cargo lambda invoke: {e}")),
            Err(_) => {
                return Err(format!(
                    "cargo lambda invoke {function} --data-file {} did not finish within {} s \
                     (function log: {})",
                    data_file.display(),
                    limit.as_secs(),
                    self.log.display()
                ))
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        if output.status.success() {
            return serde_json::from_str(stdout.trim())
                .map(Reply::Value)
                .map_err(|e| {
                    format!("{function} replied with something that is not JSON ({e}): {stdout}")
                });
        }
        Ok(Reply::Error(error_message(&String::from_utf8_lossy(
            &output.stderr,
        ))))
    }

    /// Stops watch and the function processes it started.
    pub fn stop(&mut self) {
        self.server.stop();
    }
}

/// One [`Watch`] per function; invocations go to the function's own.
pub struct Watches {
    watches: Vec<Watch>,
}

impl Watches {
    /// Starts a watch for each `(function, env file, log)`; stops those already started if
    /// one fails.
    pub async fn start(
        tools: &Tools,
        root: &Path,
        functions: &[(&str, PathBuf, PathBuf)],
        timeout: Duration,
    ) -> Result<Watches, String> {
        let mut watches = Watches {
            watches: Vec::new(),
        };
        for (function, env_file, log) in functions {
            match Watch::start(tools, root, function, env_file, log, timeout).await {
                Ok(watch) => watches.watches.push(watch),
                Err(e) => {
                    watches.stop();
                    return Err(format!("{function}: {e}"));
                }
            }
        }
        Ok(watches)
    }

    /// The watch serving `function`.
    pub fn of(&self, function: &str) -> Option<&Watch> {
        self.watches.iter().find(|w| w.function == function)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Watch> {
        self.watches.iter()
    }

    /// [`Watch::invoke`] on `function`'s watch.
    pub async fn invoke(
        &mut self,
        function: &str,
        data_file: &Path,
        limit: Duration,
    ) -> Result<Reply, String> {
        match self.watches.iter_mut().find(|w| w.function == function) {
            Some(watch) => watch.invoke(function, data_file, limit).await,
            None => Err(format!("no cargo lambda watch serves {function}")),
        }
    }

    /// Every function's log, one after the other.
    pub fn logs(&self) -> String {
        self.watches
            .iter()
            .map(|w| std::fs::read_to_string(&w.log).unwrap_or_default())
            .collect()
    }

    /// Stops every watch and the function processes they started.
    pub fn stop(&mut self) {
        for watch in &mut self.watches {
            watch.stop();
        }
    }
}

/// The message of a failed `cargo lambda invoke` (miette's report: `Error: <type>` then
/// `× <message>` lines, then a note inviting a bug report).
fn error_message(stderr: &str) -> String {
    let mut lines = Vec::new();
    let mut in_message = false;
    for line in stderr.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix('×') {
            in_message = true;
            lines.push(rest.trim().to_string());
        } else if in_message {
            if trimmed.is_empty() {
                break;
            }
            lines.push(trimmed.trim_start_matches('│').trim().to_string());
        }
    }
    if lines.is_empty() {
        stderr.trim().to_string()
    } else {
        lines.join(" ")
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

/// The last `n` lines of a log file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_of_a_failed_invoke_is_extracted() {
        let stderr = "Error: alloc::boxed::Box<dyn core::error::Error + core::marker::Send + core::marker::Sync>\n\n  \
            × LedgerUnavailable (retryable): ledger unavailable: UpdateItem:\n  \
            │ dispatch failure\n\n  Was this behavior unexpected?\n";
        assert_eq!(
            error_message(stderr),
            "LedgerUnavailable (retryable): ledger unavailable: UpdateItem: dispatch failure"
        );
    }
}
