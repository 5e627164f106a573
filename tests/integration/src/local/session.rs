//! A whole local run: tools, build, moto, emulator (enforcing the shipped policies), resources,
//! one `cargo lambda watch` per function; then rounds of deliveries. Used by `tests/events.rs`
//! and by the demo.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::deliver::{deliver, Delivery};
use super::progress::{seconds, Progress};
use super::stack::{start_emulator, start_moto, LocalStack, Names};
use super::tools::Tools;
use super::watch::Watches;
use super::FUNCTIONS;

/// Steps [`Session::start`] reports.
pub const START_STEPS: usize = 6;

#[derive(Debug, Clone)]
pub struct Options {
    /// Prefix of the resource names.
    pub name: String,
    /// Where logs, the env files and redelivered batches go (created if missing).
    pub work_dir: PathBuf,
    /// The emulator's organization (default `tests/local/organization.json`).
    pub organization: PathBuf,
    /// `READY_WAIT_SECONDS` of the functions.
    pub ready_wait_seconds: u32,
    /// Bound on one invocation (the first of each function includes `cargo run`'s build check,
    /// which waits for cargo's lock while another build runs).
    pub invoke_limit: Duration,
    /// The functions served (the three delivery functions unless a test needs fewer, or the
    /// scheduled `reconciler` too: invoked with any JSON, it runs once, auditing every READY
    /// step and repairing drift).
    pub functions: Vec<&'static str>,
    /// Actions taken out of the shipped policies, as (principal, action): a deployment whose
    /// role lacks them (see [`crate::iam`] for the principals' names).
    pub denied: Vec<(&'static str, &'static str)>,
    /// More environment for every function, after what the template would set (a test's
    /// compressed waits, e.g. `RETRY_BASE_SECONDS`).
    pub env: Vec<(String, String)>,
}

impl Options {
    pub fn new(name: &str, work_dir: PathBuf) -> Options {
        Options {
            name: name.to_string(),
            work_dir,
            organization: super::repo_root().join("tests/local/organization.json"),
            ready_wait_seconds: 5,
            invoke_limit: Duration::from_secs(900),
            functions: FUNCTIONS.to_vec(),
            denied: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// Everything running for a local run. Dropping it stops the watches (and the functions); the
/// emulator stops with it, moto when the process exits.
pub struct Session {
    pub root: PathBuf,
    pub tools: Tools,
    pub stack: LocalStack,
    pub watches: Watches,
    pub options: Options,
}

impl Session {
    /// Runs the six start steps, reporting each on `progress`.
    pub async fn start(progress: &mut Progress, options: Options) -> Result<Session, String> {
        let root = super::repo_root();
        std::fs::create_dir_all(&options.work_dir)
            .map_err(|e| format!("cannot create {}: {e}", options.work_dir.display()))?;

        let step = progress.step("checking tools (cargo, cargo-lambda, moto)");
        let tools = match Tools::find(&root) {
            Ok(tools) => tools,
            Err(e) => return Err(step.fail(e)),
        };
        let version = version(&tools.cargo_lambda).await;
        step.ok(&version);

        let step = progress.step(
            "building the functions (debug; a fresh clone compiles the AWS SDK: a few minutes)",
        );
        let build_log = options.work_dir.join("build.log");
        match build(
            &tools,
            &root,
            &options.functions,
            &build_log,
            !progress.is_quiet(),
        )
        .await
        {
            Ok(()) => step.ok(&options.functions.join(", ")),
            Err(e) => return Err(step.fail(e)),
        }

        let step = progress.step("starting moto (DynamoDB, SQS, EventBridge, Secrets Manager)");
        let moto_url = match start_moto().await {
            Ok(url) => url,
            Err(e) => return Err(step.fail(e)),
        };
        step.ok(&moto_url);

        let step = progress.step(
            "starting the identity emulator (SSO Admin, MPA, WorkSpaces Web, STS; IAM in front of \
             moto)",
        );
        let names = match super::event_files(&root).and_then(|f| Names::new(&options.name, &f)) {
            Ok(names) => names,
            Err(e) => return Err(step.fail(e)),
        };
        let emulator =
            match start_emulator(&options.organization, &moto_url, &names, &options.denied).await {
                Ok(emulator) => emulator,
                Err(e) => return Err(step.fail(e)),
            };
        let seeded = describe_organization(&emulator);
        step.ok(&emulator.url());
        for line in seeded {
            progress.note(&line);
        }
        progress.note(&format!(
            "IAM: each function signs as its role of template.yaml ({}) and is held to that \
             role's shipped policy",
            options
                .functions
                .iter()
                .filter_map(|f| super::role(f))
                .collect::<Vec<_>>()
                .join(", ")
        ));

        let step = progress.step("creating the ledger table, event bus and OIDC client secret");
        let stack = match LocalStack::provision(moto_url, emulator, &names).await {
            Ok(stack) => stack,
            Err(e) => return Err(step.fail(e)),
        };
        step.ok(&format!(
            "table {}, bus {}, secret {}",
            stack.table,
            stack.bus,
            super::stack::SECRET_NAME
        ));

        let step =
            progress.step("starting cargo lambda watch, one per function (the Lambda Runtime API)");
        let mut functions = Vec::new();
        for &function in &options.functions {
            let mut env = match stack.function_env(function, options.ready_wait_seconds) {
                Ok(env) => env,
                Err(e) => return Err(step.fail(e)),
            };
            env.extend(options.env.iter().cloned());
            let env_file = options.work_dir.join(format!("{function}.env"));
            let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            if let Err(e) = std::fs::write(&env_file, text) {
                return Err(step.fail(format!("cannot write {}: {e}", env_file.display())));
            }
            let log = options.work_dir.join(format!("{function}.log"));
            let _ = std::fs::remove_file(&log);
            functions.push((function, env_file, log));
        }
        let watches = match Watches::start(&tools, &root, &functions, options.invoke_limit).await {
            Ok(watches) => watches,
            Err(e) => return Err(step.fail(e)),
        };
        let ports: Vec<String> = watches
            .iter()
            .map(|w| format!("{} 127.0.0.1:{}", w.function, w.port))
            .collect();
        step.ok(&format!(
            "{}; function logs in {}",
            ports.join(", "),
            options.work_dir.display()
        ));

        Ok(Session {
            root,
            tools,
            stack,
            watches,
            options,
        })
    }

    /// Delivers every file to every function, in order; `each` sees each delivery as it ends.
    pub async fn deliver_all(
        &mut self,
        files: &[PathBuf],
        round: u32,
        mut each: impl FnMut(&Delivery),
    ) -> Result<Vec<Delivery>, String> {
        let scratch = self.options.work_dir.join(format!("round-{round}"));
        std::fs::create_dir_all(&scratch)
            .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
        let mut deliveries = Vec::new();
        for file in files {
            for &function in &self.options.functions {
                let delivery = deliver(
                    &mut self.watches,
                    function,
                    file,
                    &scratch,
                    self.options.invoke_limit,
                )
                .await?;
                each(&delivery);
                deliveries.push(delivery);
            }
        }
        Ok(deliveries)
    }

    /// Delivers `event` (written to the work dir as `name`) to `function` as its trigger
    /// would, retries included (see [`deliver`]).
    pub async fn deliver(
        &mut self,
        function: &str,
        name: &str,
        event: &serde_json::Value,
    ) -> Result<Delivery, String> {
        let file = self.options.work_dir.join(name);
        std::fs::write(&file, event.to_string())
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        let scratch = self.options.work_dir.clone();
        deliver(
            &mut self.watches,
            function,
            &file,
            &scratch,
            self.options.invoke_limit,
        )
        .await
    }

    /// One run of the reconciler's binary (served when `options.functions` names it): its
    /// report, as the function returns it.
    pub async fn reconcile(&mut self) -> Result<serde_json::Value, String> {
        let event: serde_json::Value = serde_json::from_str(super::SCHEDULED_EVENT)
            .map_err(|e| format!("the schedule's event: {e}"))?;
        let run = self.deliver("reconciler", "schedule.json", &event).await?;
        run.value().cloned()
    }

    /// The functions' logs (stdout and stderr of every function process and its watch).
    pub fn function_log(&self) -> String {
        self.watches.logs()
    }

    /// Stops the watches and the functions, and the emulator.
    pub fn stop(&mut self) {
        self.watches.stop();
        self.stack.emulator.shutdown();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn version(program: &Path) -> String {
    match tokio::process::Command::new(program)
        .args(["lambda", "--version"])
        .stdin(Stdio::null())
        .output()
        .await
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" "),
        Err(_) => String::new(),
    }
}

/// Builds each function exactly as `cargo lambda watch` will run it (`cargo build --bin
/// <name>` from the workspace root: the same package selection, so the same features and
/// nothing to rebuild at the first invocation); output to `log`, a dot every 10 s when `dots`.
async fn build(
    tools: &Tools,
    root: &Path,
    functions: &[&str],
    log: &Path,
    dots: bool,
) -> Result<(), String> {
    let _ = std::fs::remove_file(log);
    let started = Instant::now();
    for function in functions {
        let out = std::fs::File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
        let mut command = tokio::process::Command::new(&tools.cargo);
        command
            .args(["build", "--manifest-path", "Cargo.toml", "--bin", function])
            .current_dir(root)
            .env("CARGO_TERM_COLOR", "never")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", tools.cargo.display()))?;
        let status = loop {
            match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
                Ok(status) => break status.map_err(|e| format!("cargo build: {e}"))?,
                Err(_) => {
                    if dots {
                        print!(".");
                        let _ = std::io::stdout().flush();
                    }
                }
            }
        };
        if !status.success() {
            return Err(format!(
                "cargo build --bin {function} failed ({status}) after {}; last lines of {}:\n{}",
                seconds(started.elapsed()),
                log.display(),
                super::watch::tail(log, 25)
            ));
        }
    }
    if dots && started.elapsed() >= Duration::from_secs(10) {
        print!(" ");
    }
    Ok(())
}

/// Lines describing the seeded organization.
fn describe_organization(emulator: &identity_emulator::Emulator) -> Vec<String> {
    let config = emulator.config();
    let mut lines = vec![format!(
        "organization: management account {}, instance {}",
        config.management_account_id,
        config.organization_instance_arn()
    )];
    for account in &config.accounts {
        let portals: Vec<&str> = account
            .portals
            .iter()
            .map(|p| p.portal_arn.as_str())
            .collect();
        lines.push(format!(
            "member account {}: {}",
            account.account_id,
            if portals.is_empty() {
                "no portal".to_string()
            } else {
                format!("portal {}", portals.join(", "))
            }
        ));
    }
    lines
}
