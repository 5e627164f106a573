//! The state file (`--state`): what earlier runs published, so that a second run (or a run
//! after Ctrl-C) publishes nothing twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::failure::{Failure, Outcome};

/// What earlier runs published, so that a second run publishes nothing twice.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct State {
    pub version: u32,
    /// The ledger table and the bus the requests were published for.
    pub table: String,
    pub bus: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Account id -> when and what was published.
    pub published: BTreeMap<String, PublishedEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishedEntry {
    /// RFC 3339, UTC.
    pub at: String,
    pub event_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

pub const STATE_VERSION: u32 = 1;

impl State {
    pub fn load(path: &Path, table: &str, bus: &str, region: Option<&str>) -> Outcome<State> {
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
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, format!("{text}\n"))?;
        std::fs::rename(&tmp, path)
    }
}
