//! `retry ACCOUNT identity-center-instance --replace`: an account holds one IAM Identity Center
//! instance, and one that ended `CREATE_FAILED` stays until it is deleted, so no new generation
//! can create another. This deletes it, in the member account with the member role (as the
//! functions and `sweep` act there), after the operator confirms, and waits until it is gone.
//! It is the only place the project deletes anything, and only on an operator's explicit
//! command.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use aws_sdk_ssoadmin::types::{InstanceMetadata, InstanceStatus};
use aws_sdk_ssoadmin::Client;
use onboarding::aws::MemberAccess;
use onboarding::error::{is_access_denied, StepError};
use onboarding::ledger::{Record, Status};
use serde_json::{json, Value};

use crate::context::{target_name, Context};
use crate::failure::{Failure, Outcome};
use crate::status::INSTANCE_STEP;

/// How long the deletion may take before the command gives up (the ledger untouched).
const DELETE_WAIT: Duration = Duration::from_secs(120);
/// Between two looks at an instance being deleted.
const POLL: Duration = Duration::from_millis(500);

/// The instance `--replace` deletes: the account's `CREATE_FAILED` one.
pub struct Doomed {
    client: Client,
    account: String,
    arn: String,
    status: String,
    reason: Option<String>,
    name: Option<String>,
    identity_store: Option<String>,
}

impl Doomed {
    pub fn describe(&self) -> Value {
        json!({
            "accountId": self.account,
            "instanceArn": self.arn,
            "status": self.status,
            "statusReason": self.reason,
            "name": self.name,
            "identityStoreId": self.identity_store,
        })
    }
}

fn status_of(status: Option<&InstanceStatus>) -> String {
    status.map_or("unknown", |s| s.as_str()).to_owned()
}

fn sdk_failure(e: StepError, account: &str) -> Failure {
    let denied = is_access_denied(e.code());
    let failure = Failure::runtime(format!(
        "{}: {}; nothing was changed in the ledger",
        e.code(),
        e.reason().message
    ));
    if denied {
        failure.hint(format!(
            "the member role in account {account} must allow sso:DescribeInstance, \
             sso:ListInstances, sso:DeleteInstance and identitystore:DeleteIdentityStore \
             (member-role.yaml) and trust the operator (OperatorPrincipalArns)"
        ))
    } else {
        failure.hint("run the same command again")
    }
}

/// The member role's name and partition, as the functions and `sweep` read them.
fn member_access(ctx: &Context) -> MemberAccess {
    let role = std::env::var("MEMBER_ROLE_NAME")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "IdentityOnboardingMemberRole".into());
    let partition = std::env::var("PARTITION")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| {
            let region = ctx.config.region().map(|r| r.as_ref()).unwrap_or("");
            onboarding::settings::partition_of(region).to_owned()
        });
    MemberAccess::new(&ctx.config, role, partition)
}

/// The instance with `arn`, if the account still has it (not found and access denied both
/// mean it is not there: AWS answers either for an instance that is gone).
async fn described(client: &Client, arn: &str) -> Result<Option<InstanceMetadata>, StepError> {
    match client.describe_instance().instance_arn(arn).send().await {
        Ok(out) => Ok(Some(
            InstanceMetadata::builder()
                .instance_arn(arn)
                .set_status(out.status().cloned())
                .set_status_reason(out.status_reason().map(str::to_owned))
                .set_name(out.name().map(str::to_owned))
                .set_identity_store_id(out.identity_store_id().map(str::to_owned))
                .set_owner_account_id(out.owner_account_id().map(str::to_owned))
                .build(),
        )),
        Err(e) => {
            let e = StepError::from_sdk("sso-admin DescribeInstance", e);
            if e.code() == "ResourceNotFoundException" || is_access_denied(e.code()) {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

/// The account's own instance, from ListInstances.
async fn listed(client: &Client, account: &str) -> Result<Option<InstanceMetadata>, StepError> {
    let mut pages = client.list_instances().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| StepError::from_sdk("sso-admin ListInstances", e))?;
        if let Some(found) = page
            .instances()
            .iter()
            .find(|i| i.owner_account_id().is_none_or(|owner| owner == account))
        {
            return Ok(Some(found.clone()));
        }
    }
    Ok(None)
}

/// Why `--replace` does not apply to `record`, if it does not: only a FAILED instance step.
pub fn refusal(record: &Record) -> Option<Failure> {
    let who = target_name(&record.key);
    if record.key.step != INSTANCE_STEP {
        return Some(
            Failure::refused(format!(
                "--replace applies only to the identity-center-instance step, not {}; nothing \
                 was deleted",
                record.key
            ))
            .hint(format!(
                "retry it without --replace: `onboarding retry {who} {}`",
                record.key.step
            )),
        );
    }
    if record.status != Status::Failed {
        return Some(
            Failure::refused(format!(
                "--replace applies only to a FAILED identity-center-instance step whose instance \
                 ended CREATE_FAILED; {} is {} (generation {}); nothing was deleted",
                record.key, record.status, record.generation
            ))
            .hint(format!(
                "see `onboarding status {who}`; without --replace, `onboarding retry` handles \
                 the steps it can retry"
            )),
        );
    }
    None
}

/// The account's `CREATE_FAILED` instance (the step's recorded one, or the account's only
/// one), or a refusal naming what was found instead. A `DELETE_IN_PROGRESS` one (an earlier
/// `--replace` that gave up waiting) is returned too: it is waited for, not deleted again.
pub async fn find(ctx: &Context, record: &Record) -> Outcome<Doomed> {
    let account = target_name(&record.key);
    let access = member_access(ctx);
    let config = access
        .config_for(&account, None)
        .await
        .map_err(|e| sdk_failure(e, &account))?;
    let client = Client::new(&config);
    let mut found = None;
    if let Some(arn) = record.resource_arn.as_deref() {
        found = described(&client, arn)
            .await
            .map_err(|e| sdk_failure(e, &account))?;
    }
    if found.is_none() {
        found = listed(&client, &account)
            .await
            .map_err(|e| sdk_failure(e, &account))?;
    }
    let Some(instance) = found else {
        return Err(Failure::refused(format!(
            "account {account} has no IAM Identity Center instance: there is nothing to \
             replace; nothing was deleted"
        ))
        .hint(format!(
            "retry without --replace: `onboarding retry {account} {INSTANCE_STEP}`"
        )));
    };
    let arn = instance.instance_arn().unwrap_or_default().to_owned();
    match instance.status() {
        Some(InstanceStatus::CreateFailed | InstanceStatus::DeleteInProgress) => {}
        other => {
            return Err(Failure::refused(format!(
                "instance {arn} of account {account} is {}, not CREATE_FAILED: --replace \
                 deletes only an instance that failed to be created; nothing was deleted",
                status_of(other)
            ))
            .hint(format!(
                "see `onboarding status {account}`; an ACTIVE instance is adopted by a plain \
                 `onboarding retry {account} {INSTANCE_STEP}`"
            )))
        }
    }
    Ok(Doomed {
        client,
        status: status_of(instance.status()),
        reason: instance.status_reason().map(str::to_owned),
        name: instance.name().map(str::to_owned),
        identity_store: instance.identity_store_id().map(str::to_owned),
        account,
        arn,
    })
}

/// What will be deleted, on stderr (stdout stays the command's result).
fn show(doomed: &Doomed) {
    eprintln!(
        "This deletes IAM Identity Center instance {} of account {}:\n  status: {}{}\n  name: \
         {}\n  identity store: {} (deleted with the instance, with any users and groups in it)",
        doomed.arn,
        doomed.account,
        doomed.status,
        doomed
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default(),
        doomed.name.as_deref().unwrap_or("(none)"),
        doomed.identity_store.as_deref().unwrap_or("(none)"),
    );
}

/// The operator's confirmation: `--yes`, or the account id typed on a terminal.
pub fn confirm(doomed: &Doomed, yes: bool) -> Outcome {
    if doomed.status == InstanceStatus::DeleteInProgress.as_str() {
        return Ok(());
    }
    show(doomed);
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::refused(format!(
            "--replace deletes instance {} and needs a confirmation, but there is no terminal \
             to ask on; nothing was deleted",
            doomed.arn
        ))
        .hint("run it on a terminal to confirm, or pass --yes to confirm in advance"));
    }
    eprint!("Type the account id ({}) to delete it: ", doomed.account);
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::runtime(format!("cannot read the confirmation: {e}")))?;
    if answer.trim() != doomed.account {
        return Err(Failure::refused(format!(
            "not confirmed; instance {} was not deleted and the ledger is unchanged",
            doomed.arn
        )));
    }
    Ok(())
}

/// DeleteInstance (unless already being deleted), then wait until the account no longer has
/// it, at most [`DELETE_WAIT`].
pub async fn delete(doomed: &Doomed) -> Outcome {
    let account = doomed.account.as_str();
    if doomed.status != InstanceStatus::DeleteInProgress.as_str() {
        doomed
            .client
            .delete_instance()
            .instance_arn(&doomed.arn)
            .send()
            .await
            .map_err(|e| {
                sdk_failure(StepError::from_sdk("sso-admin DeleteInstance", e), account)
            })?;
    }
    let deadline = Instant::now() + DELETE_WAIT;
    loop {
        let there = match described(&doomed.client, &doomed.arn)
            .await
            .map_err(|e| sdk_failure(e, account))?
        {
            Some(_) => true,
            // Not found: make sure the account's own list agrees.
            None => listed(&doomed.client, account)
                .await
                .map_err(|e| sdk_failure(e, account))?
                .is_some_and(|i| i.instance_arn() == Some(doomed.arn.as_str())),
        };
        if !there {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Failure::runtime(format!(
                "instance {} of account {account} is still being deleted after {} s; the \
                 ledger is unchanged",
                doomed.arn,
                DELETE_WAIT.as_secs()
            ))
            .hint(format!(
                "run the same command again later: it waits for the deletion, then retries \
                 ({INSTANCE_STEP} of {account})"
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}
