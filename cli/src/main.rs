//! `onboarding`: the operator's command line for the identity onboarding functions.
//!
//! Reads the ledger (DynamoDB) and publishes to the event bus (EventBridge) with the standard
//! AWS configuration chain: credentials, Region and the `AWS_ENDPOINT_URL_<SERVICE>` endpoints
//! (which point it at a local stack).

mod backfill;
mod context;
mod failure;
mod publish;
mod recorded;
mod replace;
mod replay;
mod retry;
mod status;
mod sweep;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use onboarding::ledger::Status;

use crate::context::{Context, Target};
use crate::failure::Failure;

const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  an AWS call failed or the ledger could not be read (throttling, network, missing table,
     credentials): the message says what; running the command again may work
  2  usage error: the command line is wrong; nothing was read or changed
  3  refused: understood, but not done (the step is not FAILED, nothing was found, the
     events are invalid); nothing was changed; the message says what to do instead

Configuration: credentials, Region and endpoints come from the standard AWS chain
(AWS_PROFILE, AWS_REGION, AWS_ACCESS_KEY_ID, ..., AWS_ENDPOINT_URL_DYNAMODB and
AWS_ENDPOINT_URL_EVENTBRIDGE for a local stack).";

const EXAMPLES: &str = "\
Examples:
  onboarding list                                   what needs attention
  onboarding status 222222222222                    every step of an account
  onboarding retry 222222222222 identity-center-instance
  onboarding replay events/onboarding-requested.json --dry-run
  onboarding sweep --dry-run                        what the reconciler would do now
  onboarding backfill --dry-run                     what onboarding the whole organization would publish";

/// Operate the identity onboarding: look at the ledger, retry failed steps, replay events.
#[derive(Parser, Debug)]
#[command(
    name = "onboarding",
    version,
    about,
    after_help = format!("{EXAMPLES}\n\n{EXIT_CODES}"),
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct Global {
    /// The ledger table (DynamoDB)
    #[arg(long, env = "LEDGER_TABLE", value_name = "NAME", global = true)]
    table: Option<String>,
    /// The event bus that carries onboarding requests
    #[arg(
        long,
        env = "EVENT_BUS_NAME",
        value_name = "NAME",
        default_value = "default",
        global = true
    )]
    bus: String,
    /// The organization instance of IAM Identity Center (its steps are in `status` and
    /// reached as `org`)
    #[arg(long, env = "ORG_INSTANCE_ARN", value_name = "ARN", global = true)]
    org_instance_arn: Option<String>,
    /// Source of onboarding requests
    #[arg(
        long,
        env = "EVENT_SOURCE",
        value_name = "SOURCE",
        default_value = onboarding::events::DEFAULT_EVENT_SOURCE,
        global = true
    )]
    source: String,
    /// detail-type of onboarding requests
    #[arg(
        long,
        env = "REQUEST_DETAIL_TYPE",
        value_name = "TYPE",
        default_value = onboarding::events::DEFAULT_REQUEST_DETAIL_TYPE,
        global = true
    )]
    detail_type: String,
    /// Print JSON for scripts instead of tables (errors too, on stderr)
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Every step of one account (and of the organization) from the ledger
    #[command(after_help = "\
Shows each step's status, resource ARN, generation, attempts, timestamps (RFC 3339, UTC),
last error and what to do next. With --org-instance-arn (ORG_INSTANCE_ARN) the
organization's approval-identity-source step is shown too; `status org` shows only it.
Refused (exit 3) when the ledger has nothing for the account.

Examples:
  onboarding status 222222222222
  onboarding status 222222222222 --json | jq '.steps[] | {step: .key.step, status}'
  onboarding status org --org-instance-arn arn:aws:sso:::instance/ssoins-1234567890abcdef")]
    Status {
        /// A 12-digit account id, or `org` for the organization's steps
        #[arg(value_name = "ACCOUNT|org", value_parser = context::parse_target)]
        target: Target,
    },
    /// Steps that need attention (not READY), oldest change first
    #[command(after_help = "\
Without --status: every FAILED, IN_PROGRESS and CREATED step. Exits 0 also when nothing
is found (an empty table, or [] with --json).

Examples:
  onboarding list
  onboarding list --status FAILED --json")]
    List {
        /// Only steps with this status (repeatable)
        #[arg(long, value_enum, ignore_case = true, value_name = "STATUS")]
        status: Vec<StatusArg>,
    },
    /// Retry a FAILED or stalled step: new generation, then the request is published again
    #[command(after_help = "\
A FAILED step, or an IN_PROGRESS one whose lease ran out (its request gone to a DLQ, say),
moves to a new generation (a new ClientToken) and an `Account Onboarding Requested` event
for the account is published to the bus, which the functions pick up. A CREATED step only
has its request published again (its readiness is checked). Anything else (READY, a live
lease) exits 3 and says why.

What is published: the request the ledger recorded for the step's generation (its first
claimant's, `requested`), rebuilt by the step (instance name and tags; the provider's portal,
name, type, details, secret name and tags), with that request's time (EventBridge's Time):
it stays older than any request made after it, so it changes nothing a newer request set.
EventBridge gives it a new event id. A step with no recorded request (an item of an older
version, or one an earlier retry reset) is refused (exit 3): pass --event FILE.
  approval-identity-source   (`retry org ...`) the request of an account whose
                             identity-center-instance is READY (--account), as that step
                             applied it (for that account a duplicate), or --event FILE
With --event FILE the file's event is published as it is (source, detail-type, detail) with
its own time; an event without a time is refused.

STEP is the step as `status` shows it; a unique prefix such as `web-identity-provider` is
enough when the account has only one such step. If publishing fails after the reset, run
the same command again: it publishes without another reset.

--replace (identity-center-instance only): an account holds one IAM Identity Center
instance, and one that ended CREATE_FAILED stays until deleted, so a new generation cannot
create another. For a FAILED step whose instance (the recorded one, or the account's only
one) is CREATE_FAILED, --replace assumes the member role in the account (MEMBER_ROLE_NAME),
shows the instance, asks you to type the account id to confirm (or --yes), deletes it
(sso-admin DeleteInstance, with its identity store), waits until it is gone, then retries as
above. Anything else (another step, another status, an instance that is not CREATE_FAILED)
is refused (exit 3) and nothing is deleted; without a terminal and without --yes it is
refused too.

Examples:
  onboarding retry 222222222222 identity-center-instance
  onboarding retry 222222222222 identity-center-instance --replace
  onboarding retry 222222222222 web-identity-provider --event events/onboarding-requested.json
  onboarding retry org approval-identity-source --account 222222222222")]
    Retry {
        /// The 12-digit account id (for a web identity provider: the portal's account), or `org`
        #[arg(value_name = "ACCOUNT|org", value_parser = context::parse_target)]
        target: Target,
        /// The step, as `status` shows it, or a unique prefix of it
        step: String,
        /// The onboarding request to publish (one event with its time: the original, or a
        /// corrected one)
        #[arg(long, value_name = "FILE")]
        event: Option<PathBuf>,
        /// For `retry org`: an onboarded account (identity-center-instance READY) whose
        /// recorded request carries the retry
        #[arg(long, value_name = "ACCOUNT", value_parser = context::parse_account)]
        account: Option<String>,
        /// identity-center-instance only: delete the account's CREATE_FAILED instance first
        /// (after confirmation), then retry
        #[arg(long)]
        replace: bool,
        /// With --replace: confirm the deletion in advance (no question asked)
        #[arg(long, requires = "replace")]
        yes: bool,
    },
    /// Publish events from files to the bus, each with its own time (EventBridge assigns new ids)
    #[command(after_help = "\
Each file holds one EventBridge event, a JSON array of events, or an SQS batch
({\"Records\": [...]}) whose bodies are events; a directory means its *.json files. Every
event is checked first, as the functions will decode it; if any is invalid nothing is sent
(exit 3) unless --skip-invalid. Events are sent as the files have them (source,
detail-type, detail, resources), ten per PutEvents call; a failed entry is reported and the
exit code is 1.

Each event keeps its own time: the file's `time` is sent as EventBridge's Time, and the
functions order a step's requests by it (then by event id). A replayed request therefore
stays older than a newer one that already applied and changes nothing it set. An event
without a time, or with one that is not an RFC 3339 UTC time, is invalid (it would get the
time of publishing and pass every request made since). Replaying is safe: the functions
create each resource once, so a replayed request for a finished step is a duplicate.

Examples:
  onboarding replay events/onboarding-requested.json
  onboarding replay exported/ --dry-run
  onboarding replay events/ --skip-invalid")]
    Replay {
        /// Event files or directories of *.json event files
        #[arg(value_name = "FILE|DIR", required = true)]
        paths: Vec<PathBuf>,
        /// Check and list what would be sent; send nothing
        #[arg(long)]
        dry_run: bool,
        /// Send the valid events and report the invalid ones, instead of sending nothing
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Run the reconciler now: re-drive every step that is due, audit READY steps for drift
    #[command(after_help = "\
Does what the scheduled reconciler does, from here: reads the ledger's attention index and
re-drives every step that is not final and is due (IN_PROGRESS whose lease expired, CREATED,
a pending update), through the same engine as the functions, so it is as exactly-once as any
delivery; then audits every READY step for drift (deleted, or changed behind the project's
back), announcing what it finds. FAILED steps are listed, not touched (`onboarding retry`).
It assumes the member role like the functions (MEMBER_ROLE_NAME) and reads provider secrets
by name; the organization's step needs --org-instance-arn.

Examples:
  onboarding sweep --dry-run
  onboarding sweep --repair --json")]
    Sweep {
        /// Read and report what would be done; write and call nothing
        #[arg(long)]
        dry_run: bool,
        /// Repair drift: re-create a deleted resource (a new generation), update a changed one
        #[arg(long, env = "REPAIR_DRIFT")]
        repair: bool,
    },
    /// Onboard an existing organization: a request for every account the ledger has not seen
    #[command(after_help = BACKFILL_HELP)]
    Backfill {
        /// Only the accounts directly under this OU (or root)
        #[arg(long, value_name = "OU_ID", value_parser = backfill::parse_parent)]
        ou: Option<String>,
        /// With --ou: the accounts of every OU under it too
        #[arg(long, requires = "ou")]
        include_nested: bool,
        /// Leave this account out (repeatable)
        #[arg(long, value_name = "ACCOUNT", value_parser = context::parse_account)]
        exclude: Vec<String>,
        /// Accounts' web identity providers: JSON lines or a JSON array (see below)
        #[arg(long, value_name = "FILE")]
        portals: Option<PathBuf>,
        /// Most requests published per second
        #[arg(long, value_name = "N", default_value = "10", value_parser = backfill::parse_rate)]
        rate: u32,
        /// Where the accounts published are recorded
        #[arg(long, value_name = "FILE", default_value = backfill::DEFAULT_STATE_FILE)]
        state: PathBuf,
        /// Publish again the accounts the state file records (not those the ledger has)
        #[arg(long)]
        force: bool,
        /// List and read, print the plan; publish nothing, write no state
        #[arg(long)]
        dry_run: bool,
        /// AWS profile whose credentials read AWS Organizations (the management account or a
        /// delegated administrator), when they are not the stack's
        #[arg(long, env = "ORGANIZATIONS_PROFILE", value_name = "PROFILE")]
        organizations_profile: Option<String>,
    },
}

const BACKFILL_HELP: &str = "\
Lists the organization's accounts (AWS Organizations: ListAccounts, or with --ou
ListAccountsForParent, and ListOrganizationalUnitsForParent with --include-nested), keeps the
ACTIVE ones but never the management account nor the --exclude ones, reads their steps from
the ledger (BatchGetItem, 100 keys a call) and publishes an `Account Onboarding Requested`
event for each account that has none yet, ten per PutEvents call, at most --rate per second.
Accounts whose steps are READY are left alone, FAILED ones are skipped (use `onboarding
retry`), IN_PROGRESS and CREATED ones are skipped as in progress.

Published requests are recorded in the state file (--state, default .onboarding-backfill.json
in the current directory) after every batch: a second run, or a run after Ctrl-C, skips them
until the ledger has them (--force publishes them again). Nothing is written to the ledger.

--portals FILE gives accounts a web identity provider: JSON lines (or a JSON array) of
  {\"accountId\": \"222222222222\", \"portalArn\": \"arn:aws:workspaces-web:...:portal/...\",
   \"providerName\": \"corp-oidc\", \"providerType\": \"OIDC\", \"details\": {...},
   \"secretId\": \"onboarding/corp-oidc\", \"tags\": {...}}
each checked as the functions decode a request's webIdentityProvider before anything is read
or sent: an invalid entry is named by its line and field, and nothing is published (exit 3).

Organizations answers the management account or a delegated administrator: when the stack's
table and bus are in another account, --organizations-profile PROFILE reads Organizations
with that profile's credentials.

Examples:
  onboarding backfill --dry-run
  onboarding backfill --ou ou-ab12-cdef5678 --include-nested --exclude 333333333333
  onboarding backfill --portals portals.jsonl --rate 2 --json";

/// A step status on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum StatusArg {
    #[value(name = "FAILED")]
    Failed,
    #[value(name = "IN_PROGRESS")]
    InProgress,
    #[value(name = "CREATED")]
    Created,
    #[value(name = "READY")]
    Ready,
    #[value(name = "RETIRED")]
    Retired,
}

impl From<StatusArg> for Status {
    fn from(s: StatusArg) -> Status {
        match s {
            StatusArg::Failed => Status::Failed,
            StatusArg::InProgress => Status::InProgress,
            StatusArg::Created => Status::Created,
            StatusArg::Ready => Status::Ready,
            StatusArg::Retired => Status::Retired,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version print and succeed; usage errors exit 2.
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
        }
    };
    let json = cli.global.json;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return report(
                &Failure::runtime(format!("cannot start the async runtime: {e}")),
                json,
            )
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(&failure, json),
    }
}

fn report(failure: &Failure, json: bool) -> ExitCode {
    if json {
        let doc = serde_json::json!({
            "error": {
                "exitCode": failure.exit as u8,
                "message": failure.message,
                "hint": failure.hint,
            }
        });
        eprintln!("{doc}");
    } else {
        eprintln!("{failure}");
    }
    ExitCode::from(failure.exit as u8)
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let g = cli.global;
    let ctx = Context::load(
        g.table,
        g.bus,
        g.org_instance_arn,
        onboarding::events::Accept::new(g.source, g.detail_type),
        g.json,
    )
    .await?;
    match cli.command {
        Command::Status { target } => status::status(&ctx, &target).await,
        Command::List { status } => {
            let statuses: Vec<Status> = if status.is_empty() {
                vec![Status::Failed, Status::InProgress, Status::Created]
            } else {
                let mut s: Vec<Status> = status.into_iter().map(Status::from).collect();
                s.dedup();
                s
            };
            status::list(&ctx, &statuses).await
        }
        Command::Retry {
            target,
            step,
            event,
            account,
            replace,
            yes,
        } => {
            let replace = replace.then_some(retry::Replace { yes });
            retry::retry(
                &ctx,
                &target,
                &step,
                event.as_deref(),
                account.as_deref(),
                replace,
            )
            .await
        }
        Command::Replay {
            paths,
            dry_run,
            skip_invalid,
        } => replay::replay(&ctx, &paths, dry_run, skip_invalid).await,
        Command::Sweep { dry_run, repair } => sweep::sweep(&ctx, dry_run, repair).await,
        Command::Backfill {
            ou,
            include_nested,
            exclude,
            portals,
            rate,
            state,
            force,
            dry_run,
            organizations_profile,
        } => {
            let options = backfill::Options {
                ou,
                include_nested,
                exclude,
                portals,
                rate,
                state,
                force,
                dry_run,
                organizations_profile: organizations_profile.filter(|p| !p.trim().is_empty()),
            };
            backfill::backfill(&ctx, options).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors_are_usage_errors() {
        for args in [
            vec!["onboarding"],
            vec!["onboarding", "status"],
            vec!["onboarding", "status", "12ab"],
            vec!["onboarding", "list", "--status", "DONE"],
            vec!["onboarding", "retry", "222222222222"],
            vec![
                "onboarding",
                "retry",
                "222222222222",
                "identity-center-instance",
                "--yes",
            ],
            vec!["onboarding", "replay"],
            vec!["onboarding", "backfill", "--include-nested"],
            vec!["onboarding", "backfill", "--ou", "222222222222"],
            vec!["onboarding", "backfill", "--exclude", "12ab"],
            vec!["onboarding", "backfill", "--rate", "0"],
        ] {
            let err = Cli::try_parse_from(&args).expect_err("usage error");
            assert!(err.use_stderr(), "{args:?}");
        }
        let ok = Cli::try_parse_from(["onboarding", "list", "--status", "failed", "--json"]);
        assert!(ok.is_ok());
    }
}
