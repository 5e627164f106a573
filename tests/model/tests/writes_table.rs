//! The model's table of writes is in step with `shared/src/ledger/writes.rs`.

use std::collections::BTreeSet;

use ledger_model::model::WRITE_STEPS;
use ledger_model::writes::{builders_that_write, WRITES};

const SOURCE: &str = include_str!("../../../shared/src/ledger/writes.rs");

#[test]
fn every_builder_that_writes_has_a_row_and_every_row_a_builder() {
    let code: BTreeSet<String> = builders_that_write(SOURCE).into_iter().collect();
    assert!(
        code.len() >= 10,
        "found only {code:?} in writes.rs: has the parser lost its way?"
    );
    let table: BTreeSet<String> = WRITES.iter().map(|w| w.builder.to_owned()).collect();
    let missing: Vec<_> = code.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "writes.rs has builders that write and that the model's table does not name: \
         {missing:?}; add each to WRITES (tests/model/src/writes.rs) with the model step it \
         stands for, and model it"
    );
    let gone: Vec<_> = table.difference(&code).collect();
    assert!(
        gone.is_empty(),
        "the model's table names builders that writes.rs no longer has (or that no longer \
         write): {gone:?}"
    );
}

#[test]
fn every_model_write_has_a_row_and_every_row_names_model_writes() {
    for w in WRITES {
        for step in w.steps {
            assert!(
                WRITE_STEPS.contains(step),
                "{}: names {step:?}, which is not a write of the model",
                w.builder
            );
        }
        assert!(
            !w.steps.is_empty() || w.note.starts_with("not modelled"),
            "{}: no model step and no reason",
            w.builder
        );
    }
    for step in WRITE_STEPS {
        assert!(
            WRITES.iter().any(|w| w.steps.contains(step)),
            "the model's write {step:?} stands for no builder of writes.rs"
        );
    }
}

#[test]
fn the_parser_tells_writes_from_queries() {
    let source = "pub(crate) fn w(a: u32) -> Expressions {\n    let mut e = Expressions::default();\n    \
                  e.update = Some(format!(\"SET {x}\"));\n    e\n}\n\
                  pub(crate) fn q(\n    a: u32,\n) -> Expressions {\n    e.condition = Some(String::new());\n    e\n}\n\
                  fn helper(e: &mut Expressions) -> String {\n    e.update = Some(String::new());\n    String::new()\n}\n\
                  #[cfg(test)]\nmod tests { fn t() -> Expressions { e.update = Some(x) } }\n";
    assert_eq!(builders_that_write(source), vec!["w".to_owned()]);
}
