//! Runs a release function binary as Lambda would start it: a fresh process with Lambda's
//! environment (and nothing of ours), one invocation from the stub Runtime API.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use integration_tests::stack::{Stack, REGION};
use serde_json::Value;
use tokio::process::Command;

use crate::proxy::{MotoTime, TimingProxy};
use crate::runtime_api::RuntimeApi;

/// One function binary and the environment it is deployed with.
#[derive(Clone, Debug)]
pub struct Subject {
    pub name: String,
    pub binary: PathBuf,
    pub env: Vec<(String, String)>,
}

/// What one process did with its one invocation.
#[derive(Debug)]
pub struct Run {
    /// exec -> first `GET /next`: the init phase.
    pub init: Duration,
    /// exec -> the invocation's response.
    pub response: Duration,
    pub reply: Value,
    /// Peak resident set size (VmHWM) once the response arrived, in KiB.
    pub peak_rss_kib: u64,
    /// What moto did for this invocation.
    pub moto: MotoTime,
}

const PER_RUN_LIMIT: Duration = Duration::from_secs(90);

static REQUESTS: AtomicU64 = AtomicU64::new(1);

impl Subject {
    /// The environment Lambda gives a function (`provided.al2023`, 128 MB), with the local
    /// stand-ins as the AWS endpoints, plus the function's own variables in `extra`.
    pub fn new(
        name: &str,
        binary: PathBuf,
        stack: &Stack,
        moto: &TimingProxy,
        scratch: &Path,
    ) -> Self {
        let moto = moto.url();
        let emulator = stack.emulator.url();
        // A function signs as its role of template.yaml, as Lambda gives it that role's
        // credentials: the emulator holds its calls (STS, SSO Admin, MPA, WorkSpaces Web) to
        // the role's shipped policy, and so does its forwarder for the calls to moto (through
        // the timing proxy). The baseline (one PutItem, to moto) is no function of the
        // template: it keeps a key of no role, which the forwarder passes on unevaluated, so
        // both take the same hop.
        let access_key = integration_tests::local::role(name).unwrap_or("AKIDLOCALBENCH");
        let mut env: Vec<(String, String)> = [
            ("PATH", "/usr/local/bin:/usr/bin:/bin".to_string()),
            ("LANG", "en_US.UTF-8".into()),
            ("TZ", ":UTC".into()),
            ("LAMBDA_TASK_ROOT", "/var/task".into()),
            ("LAMBDA_RUNTIME_DIR", "/var/runtime".into()),
            ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".into()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/11/22/[$LATEST]bench".into(),
            ),
            ("AWS_REGION", REGION.into()),
            ("AWS_DEFAULT_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", access_key.into()),
            ("AWS_SECRET_ACCESS_KEY", "local-secret".into()),
            ("AWS_SESSION_TOKEN", "local-session".into()),
            // No shared config files, as in Lambda (absent files are looked for, not found).
            (
                "AWS_CONFIG_FILE",
                scratch.join("no-aws-config").display().to_string(),
            ),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                scratch.join("no-aws-credentials").display().to_string(),
            ),
            ("AWS_ENDPOINT_URL_DYNAMODB", moto.clone()),
            ("AWS_ENDPOINT_URL_EVENTBRIDGE", moto.clone()),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.clone()),
            ("AWS_ENDPOINT_URL_SQS", moto),
            ("AWS_ENDPOINT_URL_SSO_ADMIN", emulator.clone()),
            ("AWS_ENDPOINT_URL_MPA", emulator.clone()),
            ("AWS_ENDPOINT_URL_WORKSPACES_WEB", emulator.clone()),
            ("AWS_ENDPOINT_URL_STS", emulator),
            ("LEDGER_TABLE", stack.table.clone()),
            ("TABLE_NAME", stack.table.clone()),
            ("EVENT_BUS_NAME", stack.bus.clone()),
            ("ORG_INSTANCE_ARN", stack.organization_instance_arn.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        env.sort();
        Subject {
            name: name.to_string(),
            binary,
            env,
        }
    }

    /// Starts a fresh process, hands it `payload` as its first invocation, waits for its
    /// answer, reads its peak RSS and kills it. Its output goes to `log`.
    pub async fn run(
        &self,
        api: &RuntimeApi,
        moto: &TimingProxy,
        payload: &Value,
        log: &Path,
    ) -> Result<Run, String> {
        let n = REQUESTS.fetch_add(1, Ordering::Relaxed);
        let request_id = format!("{:08x}-0000-4000-8000-{n:012x}", std::process::id());
        api.arm(&self.name, &request_id, Bytes::from(payload.to_string()));
        let out = std::fs::File::create(log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cannot share {}: {e}", log.display()))?;

        let mut command = Command::new(&self.binary);
        command
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        moto.reset();
        let exec = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        let pid = child.id().unwrap_or_default();

        let outcome = loop {
            if let Some(reply) = api.reply() {
                break Ok(reply);
            }
            if let Some(error) = api.init_error() {
                break Err(format!("{} failed its init: {error}", self.name));
            }
            if let Ok(Some(status)) = child.try_wait() {
                break Err(format!("{} exited ({status}) before answering", self.name));
            }
            if exec.elapsed() > PER_RUN_LIMIT {
                break Err(format!(
                    "{} did not answer within {PER_RUN_LIMIT:?}",
                    self.name
                ));
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), api.changed()).await;
        };
        let moto_time = moto.time();
        let peak_rss_kib = peak_rss_kib(pid);
        let _ = child.start_kill();
        let _ = child.wait().await;

        let fail = |message: String| {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(8).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!(
                "{message}\n  log {}:\n    {}",
                log.display(),
                tail.join("\n    ")
            )
        };
        let reply = outcome.map_err(fail)?;
        let first_next = api
            .first_next()
            .ok_or_else(|| fail(format!("{} answered without asking for work", self.name)))?;
        let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        if !reply.ok {
            return Err(fail(format!("{} reported an error: {body}", self.name)));
        }
        Ok(Run {
            init: first_next.saturating_duration_since(exec),
            response: reply.at.saturating_duration_since(exec),
            reply: body,
            peak_rss_kib: peak_rss_kib.unwrap_or_default(),
            moto: moto_time,
        })
    }
}

/// VmHWM of a live process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
