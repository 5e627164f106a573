//! The (principal, action, allowed) triples IAM evaluated, each kept once, in the order
//! first seen; with `IAM_OBSERVED_DIR` set also appended as JSON lines to
//! `$IAM_OBSERVED_DIR/<pid>-<port>.jsonl`, so a script can compare the union over every
//! emulator of a test run with the shipped policies.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Default)]
pub(crate) struct Observed {
    seen: HashSet<(String, String, bool)>,
    order: Vec<(String, String, bool)>,
    file: Option<PathBuf>,
}

impl Observed {
    /// Observations of the emulator listening on `port`, written out when the
    /// environment asks for it.
    pub(crate) fn for_port(port: u16) -> Observed {
        let file = std::env::var_os("IAM_OBSERVED_DIR")
            .filter(|d| !d.is_empty())
            .map(|dir| PathBuf::from(dir).join(format!("{}-{port}.jsonl", std::process::id())));
        Observed {
            file,
            ..Observed::default()
        }
    }

    pub(crate) fn record(&mut self, principal: &str, action: &str, allowed: bool) {
        let triple = (principal.to_string(), action.to_string(), allowed);
        if !self.seen.insert(triple.clone()) {
            return;
        }
        if let Some(path) = &self.file {
            let line =
                serde_json::json!({"principal": principal, "action": action, "allowed": allowed});
            // best effort: a test must not fail because the directory is not writable
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| writeln!(f, "{line}"));
        }
        self.order.push(triple);
    }

    /// From now on, kept in memory only (nothing more is appended to the file).
    pub(crate) fn stop_writing(&mut self) {
        self.file = None;
    }

    pub(crate) fn list(&self) -> Vec<(String, String, bool)> {
        self.order.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_triple_once_in_order_and_in_the_file() {
        let dir = std::env::temp_dir().join(format!("iam-observed-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut o = Observed {
            file: Some(dir.join("x.jsonl")),
            ..Observed::default()
        };
        o.record("Fn", "sso:CreateInstance", true);
        o.record("Fn", "sso:CreateInstance", true);
        o.record("Fn", "sso:CreateInstance", false);
        assert_eq!(o.list().len(), 2);
        let text = std::fs::read_to_string(dir.join("x.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[1],
            serde_json::json!({"principal": "Fn", "action": "sso:CreateInstance", "allowed": false})
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
