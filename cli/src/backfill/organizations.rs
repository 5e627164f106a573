//! AWS Organizations: the organization's accounts, all of them or those under an OU.

use std::collections::BTreeSet;

use aws_config::SdkConfig;
use aws_sdk_organizations::error::{DisplayErrorContext, ProvideErrorMetadata};

use super::progress::Progress;
use crate::context::Context;
use crate::failure::{concise, Failure, Outcome};

/// Organizations' largest page (ListAccounts, ListAccountsForParent,
/// ListOrganizationalUnitsForParent).
const PAGE: i32 = 20;

/// One account as Organizations lists it.
#[derive(Clone, Debug)]
pub struct OrgAccount {
    pub id: String,
    pub name: Option<String>,
    /// `ACTIVE`, `SUSPENDED`, `PENDING_CLOSURE`, `CLOSED`, ...
    pub state: String,
    /// The OU or root it was listed under (with --ou).
    pub parent: Option<String>,
}

pub struct Listing {
    pub organization_id: String,
    pub management_account: String,
    pub accounts: Vec<OrgAccount>,
    /// OUs and roots listed (with --ou).
    pub parents: usize,
    pub calls: usize,
}

pub fn org_failure<E, R>(op: &str, err: aws_sdk_organizations::error::SdkError<E, R>) -> Failure
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

pub fn account_of(
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

pub async fn list_organization(
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
pub async fn organizations_config(ctx: &Context, profile: Option<&str>) -> SdkConfig {
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
