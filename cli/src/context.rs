//! What every command needs: the AWS configuration, the ledger, the bus, and how accounts
//! and the organization are named on the command line.

use aws_config::SdkConfig;
use onboarding::events::Accept;
use onboarding::ledger::key::{ACCOUNT_SCOPE_PREFIX, ORG_SCOPE_PREFIX};
use onboarding::ledger::{Ledger, LedgerError, StepKey};

use crate::failure::{Failure, Outcome};

/// The scope named on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Account(String),
    Org,
}

/// `ACCOUNT|org` for clap.
pub fn parse_target(arg: &str) -> Result<Target, String> {
    if arg == "org" {
        return Ok(Target::Org);
    }
    parse_account(arg).map(Target::Account).map_err(|_| {
        "expected a 12-digit AWS account id (or `org` for the organization's steps)".into()
    })
}

/// A 12-digit account id for clap (`--account`, `--exclude`, a mapping file's `accountId`).
pub fn parse_account(arg: &str) -> Result<String, String> {
    if arg.len() == 12 && arg.bytes().all(|b| b.is_ascii_digit()) {
        Ok(arg.to_owned())
    } else {
        Err("expected a 12-digit AWS account id".into())
    }
}

pub struct Context {
    pub config: SdkConfig,
    table: Option<String>,
    pub bus: String,
    pub org_instance_arn: Option<String>,
    pub accept: Accept,
    pub json: bool,
}

impl Context {
    pub async fn load(
        table: Option<String>,
        bus: String,
        org_instance_arn: Option<String>,
        accept: Accept,
        json: bool,
    ) -> Outcome<Context> {
        let config = onboarding::aws::load_config().await;
        if config.region().is_none() {
            return Err(Failure::usage("no AWS Region is configured")
                .hint("set AWS_REGION (or a region in the AWS_PROFILE's configuration)"));
        }
        Ok(Context {
            config,
            table: table.filter(|t| !t.trim().is_empty()),
            bus,
            org_instance_arn: org_instance_arn.filter(|a| !a.trim().is_empty()),
            accept,
            json,
        })
    }

    pub fn table(&self) -> Outcome<&str> {
        self.table.as_deref().ok_or_else(|| {
            Failure::usage("no ledger table given")
                .hint("pass --table NAME or set LEDGER_TABLE (the stack's ledger table)")
        })
    }

    pub fn ledger(&self) -> Outcome<Ledger> {
        let table = self.table()?;
        Ok(Ledger::new(
            aws_sdk_dynamodb::Client::new(&self.config),
            table,
        ))
    }

    pub fn events(&self) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(&self.config)
    }

    /// A ledger error, with the table named in the hint.
    pub fn ledger_failure(&self, err: LedgerError) -> Failure {
        Failure::ledger(err, self.table.as_deref().unwrap_or("?"))
    }

    pub fn org_arn(&self) -> Outcome<&str> {
        self.org_instance_arn.as_deref().ok_or_else(|| {
            Failure::usage("the organization's steps need its instance ARN")
                .hint("pass --org-instance-arn ARN or set ORG_INSTANCE_ARN (the organization instance of IAM Identity Center)")
        })
    }

    /// The ledger scope (`account#...` / `org#...`) of a target.
    pub fn scope(&self, target: &Target) -> Outcome<String> {
        Ok(match target {
            Target::Account(id) => format!("{ACCOUNT_SCOPE_PREFIX}{id}"),
            Target::Org => format!("{ORG_SCOPE_PREFIX}{}", self.org_arn()?),
        })
    }
}

/// How a step's scope is named on the command line: the account id, or `org`.
pub fn target_name(key: &StepKey) -> String {
    match key.account_id() {
        Some(id) => id.to_owned(),
        None if key.scope.starts_with(ORG_SCOPE_PREFIX) => "org".to_owned(),
        None => key.scope.clone(),
    }
}
