//! The ledger's writes and the model's: each expression builder of
//! `shared/src/ledger/writes.rs` that writes, with the model step(s) it stands for.
//! `tests/writes_table.rs` fails when a builder that writes is missing here, when a row
//! names a builder that no longer exists, or when a model write is in no row.

/// One builder of `shared/src/ledger/writes.rs` and the model steps it stands for.
pub struct Write {
    pub builder: &'static str,
    /// Names from [`crate::model::WRITE_STEPS`]; empty: not modelled (`note` says why).
    pub steps: &'static [&'static str],
    /// Where the model's step and the builder differ.
    pub note: &'static str,
}

pub const WRITES: &[Write] = &[
    Write {
        builder: "claim",
        steps: &["claim"],
        note: "creates the item (a new salt) or takes over an IN_PROGRESS item whose lease \
               ended; a request that acquires records its fields in the same write",
    },
    Write {
        builder: "complete",
        steps: &["complete"],
        note: "READY records Ready unannounced in the same write (the outbox); the code \
               still announces first and records READY announced while the lease is fresh",
    },
    Write {
        builder: "record_desired",
        steps: &["record_desired"],
        note: "the model merges a request's fields in one atomic write; the code reads, \
               merges, and writes conditioned on the version read (a concurrent merge makes \
               it read and merge again): the same outcome",
    },
    Write {
        builder: "promote",
        steps: &["promote"],
        note: "CREATED -> READY records Ready unannounced in the same write; the code \
               announces before promoting and writes announced = true",
    },
    Write {
        builder: "fail_permanent",
        steps: &["fail_permanent"],
        note: "",
    },
    Write {
        builder: "fail_retryable",
        steps: &["release"],
        note: "",
    },
    Write {
        builder: "fail_created",
        steps: &["fail_created"],
        note: "",
    },
    Write {
        builder: "announce",
        steps: &["mark_announced"],
        note: "the model marks one outcome of an outbox; the code has one announced flag per \
               item, conditioned on the generation",
    },
    Write {
        builder: "trim_events",
        steps: &[],
        note: "not modelled: keeps the last 20 ids of the events that acquired the step, \
               conditioned on the length read; it touches nothing the protocol reads",
    },
    Write {
        builder: "announce_retirement",
        steps: &[],
        note: "not modelled, as retire: a RETIRED step stays in the attention index until \
               its \"Account Offboarded\" is announced; this marks it and takes it out",
    },
    Write {
        builder: "settle",
        steps: &["mark_announced"],
        note: "a READY step with nothing outstanding leaves the attention index (marking its \
               Ready announced, or after it was); in the model the index is derived: an item \
               is in it while its outbox is not empty or work is pending",
    },
    Write {
        builder: "advance_applied",
        steps: &[],
        note: "not modelled: the model's desired state is applied whole or not at all; this \
               records that a READY step whose resource holds its whole desired state is at \
               the desired state's newest revision (a request that asked only what was there), \
               conditioned as settle is and never moving the applied revision back",
    },
    Write {
        builder: "mark_sent",
        steps: &["mark_announced"],
        note: "the code's outbox (a READY step's list of announcements) drops its oldest \
               entry once sent; the model's outbox is a set of outcomes of any status, each \
               marked by itself",
    },
    Write {
        builder: "retire",
        steps: &[],
        note: "not modelled: an account's closure ends every step (RETIRED, out of every \
               index); it is a final state with one announcement, checked by the moto model \
               test",
    },
    Write {
        builder: "reopen",
        steps: &[],
        note: "not modelled: a request newer than a retirement starts a new generation, as \
               an operator's retry does (modelled)",
    },
    Write {
        builder: "retry",
        steps: &["retry", "repair"],
        note: "one builder for both; the model's repair is fenced on the generation the \
               audit saw (its resource compared by a read first, as Ledger::restart does)",
    },
    Write {
        builder: "claim_update",
        steps: &["claim_update"],
        note: "the model's update lease is for the desired version; the code's for a \
               wanted revision",
    },
    Write {
        builder: "end_update",
        steps: &["end_update"],
        note: "fenced on the owner and the generation; Applied and Refused record their \
               outcome unannounced in the same write",
    },
    Write {
        builder: "record_audit",
        steps: &["record_audit"],
        note: "a drift records its outcome unannounced and, for changed fields, bumps the \
               desired version; the code records the finding only",
    },
];

/// The builders of `source` (the text of `shared/src/ledger/writes.rs`) that write: functions
/// returning `Expressions` that set an update expression. Read queries and filters only set
/// a condition.
pub fn builders_that_write(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or(source);
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("fn ") {
        let after = &rest[at + 3..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // The signature ends at the body's opening brace.
        let Some(open) = after.find('{') else { break };
        let signature = &after[..open];
        let body_start = &after[open..];
        let mut depth = 0usize;
        let mut end = body_start.len();
        for (i, c) in body_start.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        let body = &body_start[..end];
        let returns_expressions = signature
            .split("->")
            .nth(1)
            .is_some_and(|ret| ret.trim() == "Expressions");
        if returns_expressions && body.contains("update = Some(") {
            found.push(name);
        }
        rest = &body_start[end..];
    }
    found
}
