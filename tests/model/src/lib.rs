//! An exhaustive model check of the ledger protocol with `stateright`: see README.md.

pub mod model;
pub mod writes;

pub use model::LedgerModel;
