//! Resource ids and ARNs in the services' real formats, and timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

fn hex(n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(n);
    s
}

fn upper_alnum(n: usize) -> String {
    hex(n).to_ascii_uppercase()
}

/// `arn:aws:sso:::instance/ssoins-<16 hex>` (model pattern `(sso)?ins-[a-zA-Z0-9-.]{16}`).
pub(crate) fn instance_arn() -> String {
    format!("arn:aws:sso:::instance/ssoins-{}", hex(16))
}

/// `d-<10 hex>`, the identity store id format of IAM Identity Center.
pub(crate) fn identity_store_id() -> String {
    format!("d-{}", hex(10))
}

pub(crate) fn is_instance_arn(arn: &str) -> bool {
    let Some(rest) = arn.strip_prefix("arn:aws:sso:::instance/") else {
        return false;
    };
    let id = rest
        .strip_prefix("ssoins-")
        .or_else(|| rest.strip_prefix("ins-"));
    matches!(id, Some(id) if id.len() == 16
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
}

pub(crate) fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(crate) fn portal_arn(region: &str, account: &str, portal_id: &str) -> String {
    format!("arn:aws:workspaces-web:{region}:{account}:portal/{portal_id}")
}

/// `(region, account, portal id)` of `arn:aws:workspaces-web:<region>:<account>:portal/<uuid>`.
pub(crate) fn parse_portal_arn(arn: &str) -> Option<(String, String, String)> {
    let rest = arn.strip_prefix("arn:aws:workspaces-web:")?;
    let mut parts = rest.splitn(3, ':');
    let region = parts.next()?;
    let account = parts.next()?;
    let id = parts.next()?.strip_prefix("portal/")?;
    let valid = !region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && uuid::Uuid::parse_str(id).is_ok()
        && id.len() == 36;
    valid.then(|| (region.to_string(), account.to_string(), id.to_string()))
}

pub(crate) fn identity_provider_arn(region: &str, account: &str, portal_id: &str) -> String {
    format!(
        "arn:aws:workspaces-web:{region}:{account}:identityProvider/{portal_id}/{}",
        uuid()
    )
}

pub(crate) fn identity_source_arn(region: &str, account: &str) -> String {
    format!("arn:aws:mpa:{region}:{account}:identity-source/{}", uuid())
}

/// STS temporary access key id (`ASIA` + 16).
pub(crate) fn temporary_access_key_id() -> String {
    format!("ASIA{}", upper_alnum(16))
}

pub(crate) fn secret_access_key() -> String {
    hex(40)
}

pub(crate) fn session_token() -> String {
    format!("FwoGZXIvYXdzE{}", hex(120))
}

/// Role id (`AROA` + 17).
pub(crate) fn role_id() -> String {
    format!("AROA{}", upper_alnum(17))
}

pub(crate) fn request_id() -> String {
    uuid()
}

pub(crate) fn epoch_seconds(t: SystemTime) -> f64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    (d.as_millis() as f64) / 1000.0
}

/// RFC 3339 / ISO 8601 in UTC with milliseconds, e.g. `2026-11-22T09:01:02.345Z`.
pub(crate) fn iso8601(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let millis = d.subsec_millis();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 -> (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn generated_ids_match_the_models_patterns() {
        let arn = instance_arn();
        assert!(is_instance_arn(&arn), "{arn}");
        let re = regex::Regex::new(
            r"^arn:aws(-[a-z]{1,5}){0,3}:sso:::instance/(sso)?ins-[a-zA-Z0-9-.]{16}$",
        )
        .unwrap();
        assert!(re.is_match(&arn));
        let portal = portal_arn("us-east-1", "123456789012", &uuid());
        let (_, account, id) = parse_portal_arn(&portal).unwrap();
        assert_eq!(account, "123456789012");
        let idp = identity_provider_arn("us-east-1", "123456789012", &id);
        let sub = regex::Regex::new(r"^arn:[\w+=/,.@-]+:[a-zA-Z0-9\-]+:[a-zA-Z0-9\-]*:[a-zA-Z0-9]{1,12}:[a-zA-Z]+(/[a-fA-F0-9\-]{36}){2,}$").unwrap();
        assert!(sub.is_match(&idp), "{idp}");
        assert!(parse_portal_arn("arn:aws:workspaces-web:us-east-1:1234:portal/x").is_none());
    }

    #[test]
    fn iso8601_formats_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(iso8601(t), "2026-11-18T11:06:40.123Z");
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}
