//! STS (awsQuery: form-encoded `Action=...` in, XML out): `AssumeRole` and
//! `GetCallerIdentity`. Temporary credentials issued here act in the assumed account.
//! STS is not among the embedded models, so its few members are checked here, with the
//! limits of the STS API reference.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use crate::iam::{self, Check, RoleTarget};
use crate::ids;
use crate::protocol::{xml_escape, Output, ServiceError};
use crate::state::{Caller, Session, World};

const NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

pub(crate) const OPERATIONS: &[&str] = &["AssumeRole", "GetCallerIdentity"];

/// Parse an `application/x-www-form-urlencoded` body (a repeated key keeps its last value).
pub(crate) fn parse_form(body: &[u8]) -> BTreeMap<String, String> {
    parse_form_pairs(body).into_iter().collect()
}

/// Every `key=value` pair of a form or query string, in order, repeated keys included.
pub(crate) fn parse_form_pairs(body: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pair in body.split(|b| *b == b'&') {
        if pair.is_empty() {
            continue;
        }
        let mut kv = pair.splitn(2, |b| *b == b'=');
        let key = decode(kv.next().unwrap_or_default());
        let value = decode(kv.next().unwrap_or_default());
        out.push((key, value));
    }
    out
}

fn decode(raw: &[u8]) -> String {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

fn error(status: u16, code: &'static str, message: impl Into<String>) -> ServiceError {
    ServiceError::new(status, code, message)
}

pub(crate) fn execute(
    world: &mut World,
    caller: &Caller,
    operation: &str,
    params: &BTreeMap<String, String>,
) -> Result<Output, ServiceError> {
    let request_id = ids::request_id();
    match operation {
        "AssumeRole" => assume_role(world, caller, params, &request_id),
        "GetCallerIdentity" => Ok(Output::Xml(format!(
            "<GetCallerIdentityResponse xmlns=\"{NS}\"><GetCallerIdentityResult>\
             <Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account>\
             </GetCallerIdentityResult><ResponseMetadata><RequestId>{request_id}</RequestId>\
             </ResponseMetadata></GetCallerIdentityResponse>",
            xml_escape(&caller.arn),
            xml_escape(&caller.user_id),
            xml_escape(&caller.account)
        ))),
        _ => Err(error(
            400,
            "InvalidAction",
            format!("Could not find operation {operation} for version 2011-06-15"),
        )),
    }
}

/// The AWS partitions (`arn:<partition>:...`); functions build role ARNs from their own.
const PARTITIONS: &[&str] = &[
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

/// A role to assume.
#[derive(Debug, PartialEq)]
struct RoleArn {
    partition: String,
    account: String,
    name: String,
}

/// `arn:<partition>:iam::<account>:role/[path/]<name>`, in any partition.
fn parse_role_arn(arn: &str) -> Option<RoleArn> {
    let rest = arn.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    if !PARTITIONS.contains(&partition) {
        return None;
    }
    let rest = rest.strip_prefix("iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let path_and_name = resource.strip_prefix("role/")?;
    let name = path_and_name.rsplit('/').next()?;
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    (name_ok && account_ok).then(|| RoleArn {
        partition: partition.to_string(),
        account: account.to_string(),
        name: name.to_string(),
    })
}

fn assume_role(
    world: &mut World,
    caller: &Caller,
    params: &BTreeMap<String, String>,
    request_id: &str,
) -> Result<Output, ServiceError> {
    let role_arn = params
        .get("RoleArn")
        .map(String::as_str)
        .unwrap_or_default();
    let session_name = params
        .get("RoleSessionName")
        .map(String::as_str)
        .unwrap_or_default();
    let mut problems = Vec::new();
    if !(20..=2048).contains(&role_arn.len()) {
        problems.push(format!(
            "Value '{role_arn}' at 'roleArn' failed to satisfy constraint: Member must have length between 20 and 2048"
        ));
    }
    let session_ok = (2..=64).contains(&session_name.len())
        && session_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if !session_ok {
        problems.push(format!(
            "Value '{session_name}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]* and have length between 2 and 64"
        ));
    }
    let duration = match params.get("DurationSeconds") {
        None => 3600,
        Some(d) => match d.parse::<u64>() {
            Ok(n) if (900..=43_200).contains(&n) => n,
            _ => {
                problems.push(format!(
                    "Value '{d}' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200"
                ));
                3600
            }
        },
    };
    if !problems.is_empty() {
        let n = problems.len();
        return Err(error(
            400,
            "ValidationError",
            format!(
                "{n} validation error{} detected: {}",
                if n == 1 { "" } else { "s" },
                problems.join("; ")
            ),
        ));
    }
    let Some(RoleArn {
        partition,
        account,
        name: role_name,
    }) = parse_role_arn(role_arn)
    else {
        return Err(error(
            400,
            "ValidationError",
            format!("{role_arn} is invalid: expected arn:<partition>:iam::<account>:role/<name>"),
        ));
    };
    let denied = |message: String| error(403, "AccessDenied", message);
    let plain_denial = || {
        denied(format!(
            "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
            caller.arn
        ))
    };
    // IAM (with a policy set, for an evaluated caller): its own policy first
    let management = world.config.management_account_id.clone();
    let config = &world.config;
    let acting = config
        .iam
        .as_ref()
        .and_then(|set| iam::acting(set, &caller.identity, &management, &config.region));
    if let Some(acting) = &acting {
        let check = Check::new("sts:AssumeRole", role_arn);
        iam::authorize(acting, &caller.region, &[check], &mut world.observed)
            .map_err(|d| denied(d.message(&caller.arn)))?;
    }
    let config = world.config.account(&account);
    let refused = config.is_some_and(|a| {
        a.refused_roles
            .iter()
            .any(|r| r == "*" || r.eq_ignore_ascii_case(&role_name))
    });
    // A late role: absent until `ms` after the first attempt into the account.
    let not_there_yet = match config.and_then(|a| a.role_appears_after_ms) {
        None => false,
        Some(ms) => {
            let first = *world
                .role_clocks
                .entry(account.clone())
                .or_insert_with(Instant::now);
            first.elapsed() < Duration::from_millis(ms)
        }
    };
    // A closed (suspended) account cannot be signed in to.
    let closed = world.closed.contains(&account);
    if refused || not_there_yet || closed {
        return Err(plain_denial());
    }
    // then the role: it must exist there and trust the caller
    if let (Some(acting), Some(set)) = (&acting, world.config.iam.as_ref()) {
        let target = RoleTarget {
            arn: role_arn,
            partition: &partition,
            account: &account,
        };
        let region = &world.config.region;
        if !iam::assume_role(set, acting, &management, region, &caller.region, &target) {
            return Err(plain_denial());
        }
    }
    let access_key_id = ids::temporary_access_key_id();
    // The root user's sessions are the harness acting as the account's administrator (a
    // portal to create, a change made by hand): not evaluated, like the root user.
    let evaluated = acting.is_some();
    let session = Session {
        evaluated,
        partition: partition.clone(),
        account: account.clone(),
        role_name: role_name.clone(),
        session_name: session_name.to_string(),
        role_id: ids::role_id(),
    };
    let expiration = ids::iso8601(SystemTime::now() + Duration::from_secs(duration));
    let body = format!(
        "<AssumeRoleResponse xmlns=\"{NS}\"><AssumeRoleResult>\
         <Credentials><AccessKeyId>{access_key_id}</AccessKeyId>\
         <SecretAccessKey>{}</SecretAccessKey><SessionToken>{}</SessionToken>\
         <Expiration>{expiration}</Expiration></Credentials>\
         <AssumedRoleUser><AssumedRoleId>{}:{}</AssumedRoleId>\
         <Arn>arn:{partition}:sts::{account}:assumed-role/{}/{}</Arn></AssumedRoleUser>\
         </AssumeRoleResult><ResponseMetadata><RequestId>{request_id}</RequestId>\
         </ResponseMetadata></AssumeRoleResponse>",
        ids::secret_access_key(),
        ids::session_token(),
        session.role_id,
        xml_escape(session_name),
        xml_escape(&role_name),
        xml_escape(session_name),
    );
    world.sessions.insert(access_key_id, session);
    Ok(Output::Xml(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_parse_with_and_without_paths() {
        let role = |partition: &str, name: &str| RoleArn {
            partition: partition.into(),
            account: "222222222222".into(),
            name: name.into(),
        };
        assert_eq!(
            parse_role_arn("arn:aws:iam::222222222222:role/Onboard"),
            Some(role("aws", "Onboard"))
        );
        assert_eq!(
            parse_role_arn("arn:aws:iam::222222222222:role/team/Onboard"),
            Some(role("aws", "Onboard"))
        );
        assert_eq!(
            parse_role_arn("arn:aws-cn:iam::222222222222:role/Onboard"),
            Some(role("aws-cn", "Onboard"))
        );
        assert_eq!(
            parse_role_arn("arn:aws-us-gov:iam::222222222222:role/Onboard"),
            Some(role("aws-us-gov", "Onboard"))
        );
        assert_eq!(
            parse_role_arn("arn:aws-mars:iam::222222222222:role/x"),
            None
        );
        assert_eq!(parse_role_arn("arn:aws:sts::222222222222:role/x"), None);
        assert_eq!(parse_role_arn("arn:aws:iam::2222:role/Onboard"), None);
        assert_eq!(parse_role_arn("arn:aws:iam::222222222222:user/x"), None);
    }

    #[test]
    fn forms_decode() {
        let f =
            parse_form(b"Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fx&A=b+c&Flag");
        assert_eq!(f["Action"], "AssumeRole");
        assert_eq!(f["RoleArn"], "arn:aws:iam::1:role/x");
        assert_eq!(f["A"], "b c");
        assert_eq!(f["Flag"], "");
    }
}
