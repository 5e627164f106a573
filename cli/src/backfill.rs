//! `backfill`: bring an existing organization on board. Lists the organization's accounts
//! (AWS Organizations), reads which of them the ledger already has (BatchGetItem), and
//! publishes an onboarding request for each account that has none yet, at a bounded rate,
//! recording what it published in a local state file so that a second run (or a run after
//! Ctrl-C) publishes nothing twice.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use aws_sdk_organizations::error::{DisplayErrorContext, ProvideErrorMetadata};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use onboarding::aws::MemberAccess;
use onboarding::events::{OnboardingRequest, SCHEMA_VERSION};
use onboarding::ledger::{Status, StepKey};
use onboarding::step::Step;
use onboarding::steps::{IdentityCenterInstance, WebIdentityProvider};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::context::Context;
use crate::failure::{concise, Failure, Outcome};
use crate::publish::{self, Prepared, Sent, MAX_ENTRIES_PER_CALL};
use crate::status::pretty;
use crate::table::{rfc3339_ms, shorten, Table};

/// The state file used when `--state` is not given (in the current directory).
pub const DEFAULT_STATE_FILE: &str = ".onboarding-backfill.json";
/// Organizations' largest page (ListAccounts, ListAccountsForParent,
/// ListOrganizationalUnitsForParent).
const PAGE: i32 = 20;

/// Why an account is not onboarded by this run (the summary groups by it).
pub const FAILED_REASON: &str = "FAILED: use onboarding retry";
pub const IN_PROGRESS_REASON: &str = "in progress";
const MANAGEMENT_REASON: &str = "the management account (never onboarded)";
const EXCLUDED_REASON: &str = "excluded (--exclude)";

/// What the command line asks of `backfill`.
#[derive(Debug)]
pub struct Options {
    pub ou: Option<String>,
    pub include_nested: bool,
    pub exclude: Vec<String>,
    pub portals: Option<PathBuf>,
    pub rate: u32,
    pub state: PathBuf,
    pub force: bool,
    pub dry_run: bool,
    pub organizations_profile: Option<String>,
}

/// `ou-xxxx-yyyyyyyy` or a root `r-xxxx` for clap.
pub fn parse_parent(arg: &str) -> Result<String, String> {
    let ok_part = |s: &str, min: usize| {
        s.len() >= min
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    };
    let valid = if let Some(rest) = arg.strip_prefix("ou-") {
        match rest.split_once('-') {
            Some((root, ou)) => ok_part(root, 4) && ok_part(ou, 8),
            None => false,
        }
    } else if let Some(root) = arg.strip_prefix("r-") {
        ok_part(root, 4)
    } else {
        false
    };
    if valid {
        Ok(arg.to_owned())
    } else {
        Err("expected an organizational unit id (ou-xxxx-xxxxxxxx) or a root id (r-xxxx)".into())
    }
}

/// `--exclude` for clap: a 12-digit account id.
pub fn parse_account(arg: &str) -> Result<String, String> {
    if arg.len() == 12 && arg.bytes().all(|b| b.is_ascii_digit()) {
        Ok(arg.to_owned())
    } else {
        Err("expected a 12-digit AWS account id".into())
    }
}

/// `--rate` for clap: events per second, 1 to 10,000.
pub fn parse_rate(arg: &str) -> Result<u32, String> {
    match arg.parse::<u32>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err("expected events per second, a whole number from 1 to 10000".into()),
    }
}

// ---------------------------------------------------------------------------------------
// The mapping file (--portals)

/// One account's web identity provider from the mapping file, already validated.
#[derive(Clone, Debug)]
pub struct PortalEntry {
    /// Where it is in the file: `line 3` (JSON lines) or `entry 3` (a JSON array).
    pub label: String,
    /// The event's `webIdentityProvider` object.
    pub provider: Map<String, Value>,
}

/// The event of an onboarding request for `account`, as the CLI publishes it.
fn request_event(
    ctx: &Context,
    account: &str,
    name: Option<&str>,
    provider: Option<&Map<String, Value>>,
) -> Value {
    let mut detail = Map::new();
    detail.insert("schemaVersion".into(), json!(SCHEMA_VERSION));
    detail.insert("accountId".into(), json!(account));
    if let Some(name) = name {
        detail.insert("accountName".into(), json!(name));
    }
    if let Some(p) = provider {
        detail.insert("webIdentityProvider".into(), Value::Object(p.clone()));
    }
    json!({
        "id": "onboarding-backfill",
        "source": ctx.accept.source,
        "detail-type": ctx.accept.detail_type,
        "detail": detail,
    })
}

/// The decoder's reason with the field named as the mapping file names it.
fn field_reason(reason: &str) -> String {
    let reason = reason
        .strip_prefix("the functions would reject it: ")
        .unwrap_or(reason);
    reason
        .replace("detail.webIdentityProvider.", "")
        .replace("detail.webIdentityProvider", "(the entry)")
        .replace("detail.", "")
}

/// Reads and validates the mapping file: every entry is turned into the onboarding request
/// it stands for and run through the decoder the functions use. Any invalid entry refuses
/// the whole file (exit 3), naming the line (or entry) and the field.
pub fn load_portals(path: &Path, ctx: &Context) -> Outcome<BTreeMap<String, PortalEntry>> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::usage(format!("cannot read the mapping file {name}: {e}"))
            .hint("pass --portals FILE: JSON lines or a JSON array of {accountId, portalArn, providerName, providerType, details, secretId, tags}")
    })?;
    let mut raw: Vec<(String, Result<Value, String>)> = Vec::new();
    if text.trim_start().starts_with('[') {
        match serde_json::from_str::<Vec<Value>>(&text) {
            Ok(items) => raw.extend(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (format!("entry {}", i + 1), Ok(v))),
            ),
            Err(e) => raw.push(("the array".to_owned(), Err(format!("not valid JSON: {e}")))),
        }
    } else {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            raw.push((
                format!("line {}", i + 1),
                serde_json::from_str::<Value>(line).map_err(|e| format!("not valid JSON: {e}")),
            ));
        }
    }

    let mut entries: BTreeMap<String, PortalEntry> = BTreeMap::new();
    let mut errors: Vec<String> = Vec::new();
    for (label, value) in raw {
        match portal_entry(ctx, &label, value) {
            Ok((account, entry)) => {
                if let Some(earlier) = entries.get(&account) {
                    errors.push(format!(
                        "{label}: accountId: {account} is already mapped by {} (one provider per account)",
                        earlier.label
                    ));
                } else {
                    entries.insert(account, entry);
                }
            }
            Err(why) => errors.push(format!("{label}: {why}")),
        }
    }
    if !errors.is_empty() {
        let shown: Vec<&str> = errors.iter().take(20).map(String::as_str).collect();
        let more = errors.len().saturating_sub(shown.len());
        return Err(Failure::refused(format!(
            "{} invalid entr{} in the mapping file {name}, nothing was published: {}{}",
            errors.len(),
            if errors.len() == 1 { "y" } else { "ies" },
            shown.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        ))
        .hint(
            "fix the entries named (each is the event's webIdentityProvider plus accountId, \
             checked as the functions decode requests; see `onboarding backfill --help`), \
             then run the command again",
        ));
    }
    if entries.is_empty() {
        return Err(
            Failure::refused(format!("the mapping file {name} has no entries")).hint(
                "leave --portals out to onboard the accounts without a web identity provider",
            ),
        );
    }
    Ok(entries)
}

fn portal_entry(
    ctx: &Context,
    label: &str,
    value: Result<Value, String>,
) -> Result<(String, PortalEntry), String> {
    let value = value?;
    let Value::Object(mut map) = value else {
        return Err("expected a JSON object {accountId, portalArn, providerName, ...}".into());
    };
    let account = match map.remove("accountId") {
        Some(Value::String(s)) => s,
        Some(_) => return Err("accountId: expected a string of 12 digits".into()),
        None => return Err("accountId: missing".into()),
    };
    if parse_account(&account).is_err() {
        return Err(format!(
            "accountId: expected 12 digits, got {}",
            shorten(&format!("{account:?}"), 40)
        ));
    }
    // Unknown fields (and secrets) are refused by the decoder, as in an event.
    let event = request_event(ctx, &account, None, Some(&map));
    publish::prepare(&event, &ctx.accept).map_err(|why| field_reason(&why))?;
    Ok((
        account,
        PortalEntry {
            label: label.to_owned(),
            provider: map,
        },
    ))
}

// ---------------------------------------------------------------------------------------
// The state file (--state)

/// What earlier runs published, so that a second run publishes nothing twice.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct State {
    version: u32,
    /// The ledger table and the bus the requests were published for.
    table: String,
    bus: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    /// Account id -> when and what was published.
    published: BTreeMap<String, PublishedEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PublishedEntry {
    /// RFC 3339, UTC.
    at: String,
    event_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
}

const STATE_VERSION: u32 = 1;

impl State {
    fn load(path: &Path, table: &str, bus: &str, region: Option<&str>) -> Outcome<State> {
        let name = path.display();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State {
                    version: STATE_VERSION,
                    table: table.to_owned(),
                    bus: bus.to_owned(),
                    region: region.map(str::to_owned),
                    published: BTreeMap::new(),
                })
            }
            Err(e) => {
                return Err(
                    Failure::usage(format!("cannot read the state file {name}: {e}"))
                        .hint("pass --state FILE with a file this user can read and write"),
                )
            }
        };
        let state: State = serde_json::from_str(&text).map_err(|e| {
            Failure::refused(format!("{name} is not a backfill state file: {e}")).hint(
                "pass --state with another file (the default is .onboarding-backfill.json in \
                 the current directory), or move this one away",
            )
        })?;
        if state.version != STATE_VERSION {
            return Err(Failure::refused(format!(
                "the state file {name} has version {}; this version of onboarding reads {STATE_VERSION}",
                state.version
            ))
            .hint("pass --state with another file"));
        }
        let region_differs =
            matches!((state.region.as_deref(), region), (Some(a), Some(b)) if a != b);
        if state.table != table || state.bus != bus || region_differs {
            return Err(Failure::refused(format!(
                "the state file {name} records a backfill into table {} and bus {}{}; this run is \
                 for table {table} and bus {bus}{}",
                state.table,
                state.bus,
                state.region.as_deref().map(|r| format!(" in {r}")).unwrap_or_default(),
                region.map(|r| format!(" in {r}")).unwrap_or_default(),
            ))
            .hint("each stack has its own state file: pass --state FILE (e.g. --state backfill-prod.json)"));
        }
        Ok(state)
    }

    /// Writes the state to `path` atomically (a temporary file renamed over it).
    fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, format!("{text}\n"))?;
        std::fs::rename(&tmp, path)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// AWS Organizations

/// One account as Organizations lists it.
#[derive(Clone, Debug)]
struct OrgAccount {
    id: String,
    name: Option<String>,
    /// `ACTIVE`, `SUSPENDED`, `PENDING_CLOSURE`, `CLOSED`, ...
    state: String,
    /// The OU or root it was listed under (with --ou).
    parent: Option<String>,
}

struct Listing {
    organization_id: String,
    management_account: String,
    accounts: Vec<OrgAccount>,
    /// OUs and roots listed (with --ou).
    parents: usize,
    calls: usize,
}

fn org_failure<E, R>(op: &str, err: aws_sdk_organizations::error::SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let code = ProvideErrorMetadata::code(&err)
        .unwrap_or_default()
        .to_owned();
    let text = concise(&format!(
        "Organizations {op}: {}",
        DisplayErrorContext(&err)
    ));
    match code.as_str() {
        "AWSOrganizationsNotInUseException" => Failure::refused(format!(
            "the account of these credentials is not in an organization ({text})"
        ))
        .hint("run it with the credentials of the organization's management account or a delegated administrator (--organizations-profile PROFILE)"),
        "ParentNotFoundException" => Failure::refused(format!("--ou: no such OU or root ({text})"))
            .hint("list them with `aws organizations list-roots` and `aws organizations list-organizational-units-for-parent --parent-id ROOT`"),
        "AccessDeniedException" | "AccessDenied" | "UnrecognizedClientException" => {
            Failure::runtime(text).hint(
                "Organizations answers only the management account and delegated administrators: \
                 pass --organizations-profile PROFILE (or ORGANIZATIONS_PROFILE) with credentials \
                 allowed organizations:DescribeOrganization, ListAccounts, ListAccountsForParent \
                 and ListOrganizationalUnitsForParent",
            )
        }
        "TooManyRequestsException" => Failure::runtime(text)
            .hint("Organizations throttled the listing: run the command again in a minute"),
        _ => Failure::runtime(text).hint(
            "run the command again; check the credentials (--organizations-profile), AWS_REGION \
             and AWS_ENDPOINT_URL_ORGANIZATIONS if you set it",
        ),
    }
}

fn account_of(
    a: &aws_sdk_organizations::types::Account,
    parent: Option<&str>,
) -> Option<OrgAccount> {
    let id = a.id()?.to_owned();
    // `State` replaces the deprecated `Status`; read whichever the service sends.
    #[allow(deprecated)]
    let state = a
        .state()
        .map(|s| s.as_str().to_owned())
        .or_else(|| a.status().map(|s| s.as_str().to_owned()))
        .unwrap_or_else(|| "UNKNOWN".to_owned());
    Some(OrgAccount {
        id,
        name: a.name().map(str::to_owned),
        state,
        parent: parent.map(str::to_owned),
    })
}

async fn list_organization(
    client: &aws_sdk_organizations::Client,
    ou: Option<&str>,
    include_nested: bool,
    progress: &Progress,
) -> Outcome<Listing> {
    let org = client
        .describe_organization()
        .send()
        .await
        .map_err(|e| org_failure("DescribeOrganization", e))?;
    let org = org.organization().ok_or_else(|| {
        Failure::runtime("Organizations DescribeOrganization returned no organization")
    })?;
    let management_account = org
        .master_account_id()
        .ok_or_else(|| {
            Failure::runtime("Organizations DescribeOrganization named no management account")
        })?
        .to_owned();
    let organization_id = org.id().unwrap_or("?").to_owned();
    let mut accounts = Vec::new();
    let mut calls = 1;
    let mut parents = 0;
    match ou {
        None => {
            let mut pages = client
                .list_accounts()
                .into_paginator()
                .page_size(PAGE)
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| org_failure("ListAccounts", e))?;
                calls += 1;
                accounts.extend(page.accounts().iter().filter_map(|a| account_of(a, None)));
                progress.listing(accounts.len());
            }
        }
        Some(ou) => {
            let mut queue = std::collections::VecDeque::from([ou.to_owned()]);
            let mut seen = BTreeSet::new();
            while let Some(parent) = queue.pop_front() {
                if !seen.insert(parent.clone()) {
                    continue;
                }
                parents += 1;
                let mut pages = client
                    .list_accounts_for_parent()
                    .parent_id(&parent)
                    .into_paginator()
                    .page_size(PAGE)
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| org_failure("ListAccountsForParent", e))?;
                    calls += 1;
                    accounts.extend(
                        page.accounts()
                            .iter()
                            .filter_map(|a| account_of(a, Some(&parent))),
                    );
                    progress.listing(accounts.len());
                }
                if include_nested {
                    let mut pages = client
                        .list_organizational_units_for_parent()
                        .parent_id(&parent)
                        .into_paginator()
                        .page_size(PAGE)
                        .send();
                    while let Some(page) = pages.next().await {
                        let page =
                            page.map_err(|e| org_failure("ListOrganizationalUnitsForParent", e))?;
                        calls += 1;
                        queue.extend(
                            page.organizational_units()
                                .iter()
                                .filter_map(|u| u.id().map(str::to_owned)),
                        );
                    }
                }
            }
        }
    }
    // An account is in one place; a listing that repeats one (pages shifting) keeps the first.
    let mut ids = BTreeSet::new();
    accounts.retain(|a| ids.insert(a.id.clone()));
    Ok(Listing {
        organization_id,
        management_account,
        accounts,
        parents,
        calls,
    })
}

/// Organizations' configuration: the stack's, or a named profile's credentials (the
/// management account or a delegated administrator) when the stack lives elsewhere.
async fn organizations_config(ctx: &Context, profile: Option<&str>) -> SdkConfig {
    let Some(profile) = profile else {
        return ctx.config.clone();
    };
    let credentials = aws_config::profile::ProfileFileCredentialsProvider::builder()
        .profile_name(profile)
        .build();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .profile_name(profile)
        .credentials_provider(credentials)
        .timeout_config(onboarding::aws::timeouts())
        .retry_config(aws_config::retry::RetryConfig::adaptive().with_max_attempts(3));
    if let Some(region) = ctx.config.region() {
        loader = loader.region(region.clone());
    }
    loader.load().await
}

// ---------------------------------------------------------------------------------------
// Progress: a bar on a terminal, plain lines otherwise

enum Progress {
    Bar(ProgressBar),
    /// Plain lines, on stderr when stdout carries JSON.
    Lines {
        stderr: bool,
    },
}

impl Progress {
    fn new(json: bool) -> Progress {
        if !json && std::io::stdout().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            Progress::Bar(bar)
        } else {
            Progress::Lines { stderr: json }
        }
    }

    fn line(&self, text: &str) {
        match self {
            Progress::Bar(bar) => bar.println(text),
            Progress::Lines { stderr: true } => eprintln!("{text}"),
            Progress::Lines { stderr: false } => println!("{text}"),
        }
    }

    fn listing(&self, found: usize) {
        if let Progress::Bar(bar) = self {
            bar.set_message(format!("listing the organization's accounts: {found}"));
        }
    }

    fn reading(&self, done: usize, total: usize) {
        if let Progress::Bar(bar) = self {
            bar.set_message(format!("reading the ledger: {done}/{total} steps"));
        }
    }

    fn start_publishing(&self, total: usize) {
        if let Progress::Bar(bar) = self {
            bar.disable_steady_tick();
            bar.set_length(total as u64);
            bar.set_position(0);
            bar.set_message("");
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} published {msg} [{elapsed_precise}, {eta} left]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
        }
    }

    fn published(&self, done: usize, total: usize, failed: usize, last: &str) {
        match self {
            Progress::Bar(bar) => {
                bar.set_position(done as u64);
                if failed > 0 {
                    bar.set_message(format!("({failed} failed)"));
                }
            }
            _ => self.line(&format!(
                "published {done}/{total}{} (last {last})",
                if failed > 0 {
                    format!(", {failed} failed")
                } else {
                    String::new()
                }
            )),
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Planning and publishing

#[derive(Clone, Debug, PartialEq, Eq)]
enum Fate {
    /// Every step the request asks for is READY.
    Ready,
    /// To publish (after a dry run: would be published).
    Publish,
    Published {
        event_id: String,
    },
    Skipped(String),
    Failed {
        code: String,
        message: String,
    },
    /// Not published: the run stopped first (Ctrl-C, a batch refused as a whole).
    NotPublished(String),
}

struct Line {
    account: OrgAccount,
    provider: Option<String>,
    /// The steps read and their status (None: not in the ledger).
    steps: Vec<(StepKey, Option<Status>)>,
    prepared: Option<Prepared>,
    note: Option<String>,
    fate: Fate,
}

impl Line {
    fn outcome(&self, dry_run: bool) -> (&'static str, &'static str) {
        match &self.fate {
            Fate::Ready => ("ready", "already ready"),
            Fate::Publish if dry_run => ("would-publish", "would publish"),
            Fate::Publish => ("not-published", "not published"),
            Fate::Published { .. } => ("published", "published"),
            Fate::Skipped(_) => ("skipped", "skipped"),
            Fate::Failed { .. } => ("failed", "failed to publish"),
            Fate::NotPublished(_) => ("not-published", "not published"),
        }
    }

    fn reason(&self) -> Option<String> {
        match &self.fate {
            Fate::Skipped(r) | Fate::NotPublished(r) => Some(r.clone()),
            Fate::Failed { code, message } => Some(format!("{code}: {message}")),
            _ => None,
        }
    }
}

/// Decides an account's fate from its steps' statuses (and the state file).
fn decide(
    steps: &[(StepKey, Option<Status>)],
    requested: Option<&PublishedEntry>,
    force: bool,
    state_name: &str,
) -> Fate {
    if steps.iter().any(|(_, s)| *s == Some(Status::Failed)) {
        return Fate::Skipped(FAILED_REASON.to_owned());
    }
    if steps
        .iter()
        .any(|(_, s)| matches!(s, Some(Status::InProgress | Status::Created)))
    {
        return Fate::Skipped(IN_PROGRESS_REASON.to_owned());
    }
    if !steps.is_empty() && steps.iter().all(|(_, s)| *s == Some(Status::Ready)) {
        return Fate::Ready;
    }
    match requested {
        Some(_) if !force => Fate::Skipped(format!(
            "requested by an earlier run (state file {state_name}); --force publishes it again"
        )),
        _ => Fate::Publish,
    }
}

/// The steps whose ledger keys the requests name, computed as the functions compute them.
/// The steps only plan here: nothing is assumed or called.
struct Planner {
    instance: IdentityCenterInstance,
    web: WebIdentityProvider,
}

impl Planner {
    fn new(ctx: &Context) -> Planner {
        let access = || MemberAccess::new(&ctx.config, "unused", "aws");
        Planner {
            instance: IdentityCenterInstance::new(access()),
            web: WebIdentityProvider::new(
                access(),
                aws_sdk_secretsmanager::Client::new(&ctx.config),
            ),
        }
    }

    /// The ledger keys of the steps `request` asks for.
    fn keys(&self, request: &OnboardingRequest) -> Vec<StepKey> {
        let mut keys = Vec::new();
        if let Ok(plan) = self.instance.plan(request) {
            keys.push(plan.key);
        }
        if request.web_identity_provider.is_some() {
            if let Ok(plan) = self.web.plan(request) {
                keys.push(plan.key);
            }
        }
        keys
    }
}

/// Prepares the request of one account; an account name the decoder refuses is left out
/// (the request is valid without it).
fn prepare_account(
    ctx: &Context,
    account: &OrgAccount,
    portal: Option<&PortalEntry>,
) -> Result<(Prepared, Option<String>), String> {
    let provider = portal.map(|p| &p.provider);
    let event = request_event(ctx, &account.id, account.name.as_deref(), provider);
    match publish::prepare(&event, &ctx.accept) {
        Ok(p) => Ok((p, None)),
        Err(why) if account.name.is_some() => {
            let event = request_event(ctx, &account.id, None, provider);
            let p = publish::prepare(&event, &ctx.accept).map_err(|e| field_reason(&e))?;
            Ok((
                p,
                Some(format!(
                    "accountName left out of the request: {}",
                    field_reason(&why)
                )),
            ))
        }
        Err(why) => Err(field_reason(&why)),
    }
}

pub async fn backfill(ctx: &Context, opts: Options) -> Outcome {
    let started = Instant::now();
    let table = ctx.table()?.to_owned();
    let region = ctx.config.region().map(|r| r.to_string());
    let state_name = opts.state.display().to_string();
    // Everything that can be checked locally is checked before any AWS call.
    let portals = match &opts.portals {
        Some(path) => load_portals(path, ctx)?,
        None => BTreeMap::new(),
    };
    let mut state = State::load(&opts.state, &table, &ctx.bus, region.as_deref())?;
    if !opts.dry_run {
        // An unwritable state file must stop the run before anything is published.
        state.save(&opts.state).map_err(|e| {
            Failure::usage(format!("cannot write the state file {state_name}: {e}"))
                .hint("pass --state FILE in a directory this user can write")
        })?;
    }

    let progress = Progress::new(ctx.json);
    let org_config = organizations_config(ctx, opts.organizations_profile.as_deref()).await;
    let organizations = aws_sdk_organizations::Client::new(&org_config);
    let listed_at = Instant::now();
    let listing = list_organization(
        &organizations,
        opts.ou.as_deref(),
        opts.include_nested,
        &progress,
    )
    .await;
    let listing = match listing {
        Ok(l) => l,
        Err(e) => {
            progress.finish();
            return Err(e);
        }
    };
    let list_time = listed_at.elapsed();
    progress.line(&format!(
        "Listed {} account(s) of organization {} in {:.2} s ({} Organizations call(s){})",
        listing.accounts.len(),
        listing.organization_id,
        list_time.as_secs_f64(),
        listing.calls,
        if opts.ou.is_some() {
            format!(", {} OU(s)", listing.parents)
        } else {
            String::new()
        }
    ));

    // Who is a candidate, and what each would be sent.
    let excluded: BTreeSet<&str> = opts.exclude.iter().map(String::as_str).collect();
    let mut lines: Vec<Line> = Vec::new();
    let mut invalid: Vec<String> = Vec::new();
    let planner = Planner::new(ctx);
    for account in &listing.accounts {
        let mut line = Line {
            account: account.clone(),
            provider: None,
            steps: Vec::new(),
            prepared: None,
            note: None,
            fate: Fate::Publish,
        };
        if account.id == listing.management_account {
            line.fate = Fate::Skipped(MANAGEMENT_REASON.to_owned());
        } else if excluded.contains(account.id.as_str()) {
            line.fate = Fate::Skipped(EXCLUDED_REASON.to_owned());
        } else if account.state != "ACTIVE" {
            line.fate = Fate::Skipped(format!("not ACTIVE ({})", account.state));
        } else {
            let portal = portals.get(&account.id);
            match prepare_account(ctx, account, portal) {
                Ok((prepared, note)) => {
                    line.provider = portal
                        .and_then(|p| p.provider.get("providerName"))
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    line.steps = prepared
                        .request
                        .as_ref()
                        .map(|r| planner.keys(r))
                        .unwrap_or_default()
                        .into_iter()
                        .map(|k| (k, None))
                        .collect();
                    line.prepared = Some(prepared);
                    line.note = note;
                }
                Err(why) => invalid.push(format!("account {}: {why}", account.id)),
            }
        }
        lines.push(line);
    }
    lines.sort_by(|a, b| a.account.id.cmp(&b.account.id));
    if !invalid.is_empty() {
        progress.finish();
        return Err(Failure::refused(format!(
            "{} account(s) would get a request the functions reject, nothing was published: {}",
            invalid.len(),
            invalid.join("; ")
        ))
        .hint("fix their entries in the mapping file (--portals), or leave the accounts out with --exclude"));
    }

    let read_at = Instant::now();
    let keys: Vec<StepKey> = lines
        .iter()
        .flat_map(|l| l.steps.iter().map(|(k, _)| k.clone()))
        .collect();
    let read = ctx
        .ledger()?
        .statuses(&keys, |done, total| progress.reading(done, total))
        .await
        .map_err(|e| ctx.ledger_failure(e));
    let read = match read {
        Ok(r) => r,
        Err(e) => {
            progress.finish();
            return Err(e);
        }
    };
    let read_time = read_at.elapsed();
    progress.line(&format!(
        "Read {} ledger step(s) of {} candidate account(s) in {:.2} s ({} BatchGetItem call(s))",
        keys.len(),
        lines.iter().filter(|l| l.prepared.is_some()).count(),
        read_time.as_secs_f64(),
        read.calls
    ));
    for line in lines.iter_mut().filter(|l| l.prepared.is_some()) {
        for (key, status) in line.steps.iter_mut() {
            *status = read.steps.get(key).copied();
        }
        let requested = state.published.get(&line.account.id);
        line.fate = decide(&line.steps, requested, opts.force, &state_name);
        if let (Fate::Skipped(_) | Fate::Publish, Some(r)) = (&line.fate, requested) {
            if line.steps.iter().all(|(_, s)| s.is_none()) {
                let when = format!("requested at {} (event id {})", r.at, r.event_id);
                line.note = Some(match line.note.take() {
                    Some(note) => format!("{note}; {when}"),
                    None => when,
                });
            }
        }
    }
    let plan_time = started.elapsed();

    // Mapping entries that this run does not use at all.
    let listed: BTreeSet<&str> = lines.iter().map(|l| l.account.id.as_str()).collect();
    let unused: Vec<String> = portals
        .iter()
        .filter(|(id, _)| !listed.contains(id.as_str()))
        .map(|(id, p)| format!("{} ({id})", p.label))
        .collect();

    // Publish.
    let interrupted = Arc::new(Interrupt::default());
    let mut stopped: Option<String> = None;
    let to_publish: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.fate == Fate::Publish)
        .map(|(i, _)| i)
        .collect();
    let publish_at = Instant::now();
    if !opts.dry_run && !to_publish.is_empty() {
        watch_interrupt(interrupted.clone());
        let events = ctx.events();
        let rate = f64::from(opts.rate);
        let per_call = MAX_ENTRIES_PER_CALL.min(opts.rate as usize).max(1);
        let total = to_publish.len();
        let mut sent = 0usize;
        let mut failed = 0usize;
        progress.start_publishing(total);
        for batch in to_publish.chunks(per_call) {
            // At most `rate` events per second, counted from the first batch; Ctrl-C ends
            // the wait at once.
            let due = publish_at + Duration::from_secs_f64((sent + failed) as f64 / rate);
            tokio::select! {
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(due)) => {}
                () = interrupted.wake.notified() => {}
            }
            if interrupted.flag.load(Ordering::SeqCst) {
                stopped = Some("interrupted (Ctrl-C)".to_owned());
                break;
            }
            let prepared: Vec<Prepared> = batch
                .iter()
                .filter_map(|&i| lines[i].prepared.clone())
                .collect();
            let results = publish::put_events(&events, &ctx.bus, &prepared).await;
            let at = rfc3339_ms(now_ms());
            let mut batch_failed = 0;
            for (&i, result) in batch.iter().zip(results) {
                let line = &mut lines[i];
                match result {
                    Sent::Accepted { event_id } => {
                        state.published.insert(
                            line.account.id.clone(),
                            PublishedEntry {
                                at: at.clone(),
                                event_id: event_id.clone(),
                                provider: line.provider.clone(),
                            },
                        );
                        line.fate = Fate::Published { event_id };
                        sent += 1;
                    }
                    Sent::Failed { code, message } => {
                        line.fate = Fate::Failed { code, message };
                        batch_failed += 1;
                        failed += 1;
                    }
                }
            }
            // Recorded after every batch: after Ctrl-C or a crash, a new run skips these.
            if let Err(e) = state.save(&opts.state) {
                progress.finish();
                return Err(Failure::runtime(format!(
                    "published {sent} request(s), but the state file {state_name} cannot be written: {e}"
                ))
                .hint("the requests published are not recorded: before running it again, check `onboarding status` of the accounts of this batch, or pass --exclude for them"));
            }
            let last = batch
                .last()
                .map(|&i| lines[i].account.id.clone())
                .unwrap_or_default();
            progress.published(sent + failed, total, failed, &last);
            if batch_failed == batch.len() {
                stopped = Some(
                    "not published: the run stopped after a batch that PutEvents refused whole"
                        .to_owned(),
                );
                break;
            }
        }
        progress.finish();
        if let Some(why) = &stopped {
            for line in lines.iter_mut().filter(|l| l.fate == Fate::Publish) {
                line.fate = Fate::NotPublished(why.clone());
            }
        }
    } else {
        progress.finish();
    }
    let publish_time = publish_at.elapsed();

    report(
        ctx,
        &opts,
        &listing,
        &lines,
        &unused,
        Timings {
            list: list_time,
            read: read_time,
            plan: plan_time,
            publish: publish_time,
            ledger_calls: read.calls,
        },
    );

    let failed = lines
        .iter()
        .filter(|l| matches!(l.fate, Fate::Failed { .. }))
        .count();
    let not_published = lines
        .iter()
        .filter(|l| matches!(l.fate, Fate::NotPublished(_)))
        .count();
    if let Some(why) = stopped.filter(|w| w.starts_with("interrupted")) {
        return Err(Failure::runtime(format!(
            "{why}: {not_published} request(s) were not published"
        ))
        .hint(format!(
            "run the same command again: the accounts published are recorded in {state_name} and skipped"
        )));
    }
    if failed > 0 || not_published > 0 {
        return Err(Failure::runtime(format!(
            "{failed} request(s) were not accepted by bus {}{}",
            ctx.bus,
            if not_published > 0 {
                format!(", {not_published} not sent")
            } else {
                String::new()
            }
        ))
        .hint(format!(
            "run the same command again: the accounts published are recorded in {state_name} and \
             skipped; check --bus / EVENT_BUS_NAME and the credentials' events:PutEvents if it \
             keeps failing"
        )));
    }
    Ok(())
}

/// Ctrl-C, as the publishing loop sees it.
#[derive(Default)]
struct Interrupt {
    flag: AtomicBool,
    wake: tokio::sync::Notify,
}

/// The first Ctrl-C stops the run after the batch in flight (whose result is recorded); a
/// second one ends the process at once.
fn watch_interrupt(interrupt: Arc<Interrupt>) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        interrupt.flag.store(true, Ordering::SeqCst);
        interrupt.wake.notify_one();
        eprintln!("\nstopping after the batch in flight (Ctrl-C again to quit at once)");
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
}

struct Timings {
    list: Duration,
    read: Duration,
    plan: Duration,
    publish: Duration,
    ledger_calls: usize,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn report(
    ctx: &Context,
    opts: &Options,
    listing: &Listing,
    lines: &[Line],
    unused: &[String],
    t: Timings,
) {
    let dry = opts.dry_run;
    let count = |f: &dyn Fn(&Fate) -> bool| lines.iter().filter(|l| f(&l.fate)).count();
    let ready = count(&|f| matches!(f, Fate::Ready));
    let published = count(&|f| matches!(f, Fate::Published { .. }));
    let would = if dry {
        count(&|f| matches!(f, Fate::Publish))
    } else {
        0
    };
    let skipped = count(&|f| matches!(f, Fate::Skipped(_)));
    let failed = count(&|f| matches!(f, Fate::Failed { .. }));
    let not_published = count(&|f| matches!(f, Fate::NotPublished(_)))
        + if dry {
            0
        } else {
            count(&|f| matches!(f, Fate::Publish))
        };
    // The summary: every outcome, skipped ones by reason, failed ones by error code.
    let by_reason = |pick: &dyn Fn(&Fate) -> Option<String>| {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for l in lines {
            if let Some(r) = pick(&l.fate) {
                *m.entry(r).or_default() += 1;
            }
        }
        m
    };
    let mut summary: Vec<(&str, usize, String)> = vec![
        ("already ready", ready, String::new()),
        if dry {
            ("would publish", would, String::new())
        } else {
            ("published", published, String::new())
        },
    ];
    for (reason, n) in by_reason(&|f| match f {
        Fate::Skipped(r) => Some(r.clone()),
        _ => None,
    }) {
        summary.push(("skipped", n, reason));
    }
    if skipped == 0 {
        summary.push(("skipped", 0, String::new()));
    }
    let failures = by_reason(&|f| match f {
        Fate::Failed { code, .. } => Some(code.clone()),
        _ => None,
    });
    if failures.is_empty() {
        summary.push(("failed to publish", 0, String::new()));
    }
    for (code, n) in failures {
        summary.push(("failed to publish", n, code));
    }
    for (reason, n) in by_reason(&|f| match f {
        Fate::NotPublished(r) => Some(r.clone()),
        _ => None,
    }) {
        summary.push(("not published", n, reason));
    }

    if ctx.json {
        let accounts: Vec<Value> = lines
            .iter()
            .map(|l| {
                let steps: Map<String, Value> = l
                    .steps
                    .iter()
                    .map(|(k, s)| {
                        (
                            k.step.clone(),
                            s.map_or(Value::Null, |s| Value::String(s.to_string())),
                        )
                    })
                    .collect();
                let detail = l
                    .prepared
                    .as_ref()
                    .and_then(|p| serde_json::from_str::<Value>(&p.detail).ok());
                json!({
                    "accountId": l.account.id,
                    "name": l.account.name,
                    "state": l.account.state,
                    "parentId": l.account.parent,
                    "outcome": l.outcome(dry).0,
                    "reason": l.reason(),
                    "eventId": match &l.fate { Fate::Published { event_id } => Some(event_id), _ => None },
                    "provider": l.provider,
                    "steps": steps,
                    "note": l.note,
                    "detail": if matches!(l.fate, Fate::Publish | Fate::Published { .. } | Fate::Failed { .. }) { detail } else { None },
                })
            })
            .collect();
        let reasons: Vec<Value> = summary
            .iter()
            .filter(|(_, n, _)| *n > 0)
            .map(|(label, n, reason)| {
                json!({ "outcome": label, "reason": (!reason.is_empty()).then_some(reason), "accounts": n })
            })
            .collect();
        let doc = json!({
            "dryRun": dry,
            "bus": ctx.bus,
            "table": ctx.table().ok(),
            "organization": {
                "id": listing.organization_id,
                "managementAccountId": listing.management_account,
            },
            "scope": {
                "ou": opts.ou,
                "includeNested": opts.include_nested,
                "exclude": opts.exclude,
            },
            "stateFile": opts.state.display().to_string(),
            "force": opts.force,
            "rate": opts.rate,
            "timings": {
                "organizationsMs": ms(t.list),
                "ledgerMs": ms(t.read),
                "ledgerCalls": t.ledger_calls,
                "planMs": ms(t.plan),
                "publishMs": ms(t.publish),
            },
            "summary": {
                "listed": lines.len(),
                "ready": ready,
                "published": published,
                "wouldPublish": would,
                "skipped": skipped,
                "failed": failed,
                "notPublished": not_published,
                "byReason": reasons,
            },
            "unusedMappings": unused,
            "accounts": accounts,
        });
        println!("{}", pretty(&doc));
        return;
    }

    let mut out = String::new();
    out.push_str(&format!(
        "\n{}Backfill of organization {} ({}), management account {} (never onboarded), into bus {} and ledger {}\n\n",
        if dry { "Dry run: " } else { "" },
        listing.organization_id,
        match &opts.ou {
            Some(ou) if opts.include_nested => format!("{ou} and the OUs under it"),
            Some(ou) => format!("{ou}, without nested OUs"),
            None => "every account".to_owned(),
        },
        listing.management_account,
        ctx.bus,
        ctx.table().unwrap_or("?"),
    ));
    let mut table = Table::new(&["ACCOUNT", "NAME", "PROVIDER", "RESULT"]);
    for l in lines {
        let (_, label) = l.outcome(dry);
        let mut result = label.to_owned();
        match &l.fate {
            Fate::Published { event_id } => result.push_str(&format!(" (event id {event_id})")),
            _ => {
                if let Some(reason) = l.reason() {
                    result.push_str(&format!(": {}", shorten(&reason, 120)));
                }
            }
        }
        if let Some(note) = &l.note {
            result.push_str(&format!(" [{}]", shorten(note, 80)));
        }
        table.row(vec![
            l.account.id.clone(),
            shorten(l.account.name.as_deref().unwrap_or("-"), 40),
            l.provider.clone().unwrap_or_else(|| "-".into()),
            result,
        ]);
    }
    if table.is_empty() {
        out.push_str("(no accounts)\n");
    } else {
        out.push_str(&table.render());
    }
    out.push_str("\nSummary:\n");
    let mut sum = Table::new(&["OUTCOME", "ACCOUNTS", "REASON"]);
    for (label, n, reason) in &summary {
        sum.row(vec![(*label).to_owned(), n.to_string(), reason.clone()]);
    }
    out.push_str(&sum.render());
    if !unused.is_empty() {
        out.push_str(&format!(
            "\nNot used: mapping entries for accounts not listed here: {}\n",
            unused.join(", ")
        ));
    }
    out.push_str(&format!(
        "\nPlanned in {:.2} s (Organizations {:.2} s, ledger {:.2} s in {} call(s)){}.\n",
        t.plan.as_secs_f64(),
        t.list.as_secs_f64(),
        t.read.as_secs_f64(),
        t.ledger_calls,
        if dry || published + failed == 0 {
            String::new()
        } else {
            format!(
                "; published {published} at up to {}/s in {:.1} s",
                opts.rate,
                t.publish.as_secs_f64()
            )
        }
    ));
    if dry {
        out.push_str(&format!(
            "Dry run: {would} request(s) would be published to bus {}; nothing was sent and the state file was not written.\n",
            ctx.bus
        ));
    } else if published > 0 {
        out.push_str(&format!(
            "Published {published} request(s), recorded in {}. Follow them with `onboarding list` and `onboarding status ACCOUNT`.\n",
            opts.state.display()
        ));
    }
    print!("{out}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ou_and_root_ids_are_checked() {
        assert!(parse_parent("ou-ab12-cdef5678").is_ok());
        assert!(parse_parent("r-ab12").is_ok());
        assert!(parse_parent("ou-ab12").is_err());
        assert!(parse_parent("OU-AB12-CDEF5678").is_err());
        assert!(parse_parent("222222222222").is_err());
        assert!(parse_rate("0").is_err());
        assert_eq!(parse_rate("25"), Ok(25));
    }

    fn key(step: &str) -> StepKey {
        StepKey::account("222222222222", step)
    }

    #[test]
    fn only_accounts_without_steps_are_published() {
        let entry = PublishedEntry {
            at: "2026-11-22T09:30:05Z".into(),
            event_id: "e".into(),
            provider: None,
        };
        let one = |s: Option<Status>| vec![(key("identity-center-instance"), s)];
        assert_eq!(decide(&one(None), None, false, "s"), Fate::Publish);
        assert_eq!(
            decide(&one(Some(Status::Ready)), None, false, "s"),
            Fate::Ready
        );
        assert_eq!(
            decide(&one(Some(Status::Failed)), None, false, "s"),
            Fate::Skipped(FAILED_REASON.into())
        );
        for s in [Status::InProgress, Status::Created] {
            assert_eq!(
                decide(&one(Some(s)), None, false, "s"),
                Fate::Skipped(IN_PROGRESS_REASON.into())
            );
        }
        assert!(
            matches!(decide(&one(None), Some(&entry), false, "s"), Fate::Skipped(r) if r.contains("earlier run"))
        );
        assert_eq!(decide(&one(None), Some(&entry), true, "s"), Fate::Publish);
        // A provider step still missing: published even though the instance is READY.
        let two = vec![
            (key("identity-center-instance"), Some(Status::Ready)),
            (key("web-identity-provider#p#n"), None),
        ];
        assert_eq!(decide(&two, None, false, "s"), Fate::Publish);
    }

    #[test]
    fn decoder_paths_are_named_as_the_mapping_file_names_them() {
        assert_eq!(
            field_reason("the functions would reject it: detail.webIdentityProvider.providerType: expected one of SAML"),
            "providerType: expected one of SAML"
        );
        assert_eq!(
            field_reason("detail.accountId: expected 12 digits"),
            "accountId: expected 12 digits"
        );
    }
}
