//! What the command line asks of `backfill`, and clap's checks of its values.

use std::path::PathBuf;

/// The state file used when `--state` is not given (in the current directory).
pub const DEFAULT_STATE_FILE: &str = ".onboarding-backfill.json";

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

/// `--rate` for clap: events per second, 1 to 10,000.
pub fn parse_rate(arg: &str) -> Result<u32, String> {
    match arg.parse::<u32>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err("expected events per second, a whole number from 1 to 10000".into()),
    }
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
}
