//! Resolution decisions, pure and deterministic: which identifiers may link records
//! ([`IdentifierPolicy`]), how two records compare field by field ([`compare`], the levels a
//! probabilistic scorer weighs) and what a customer's golden profile is ([`golden`]).
//!
//! No IO: the store feeds records in and persists what comes out, so every decision here can be
//! tested with small fixtures and replayed.

pub mod compare;
mod golden;
mod policy;

pub use golden::{Golden, Provenance, RecordView, Valued, golden};
pub use policy::{BlockRule, DEFAULT_BLOCKLIST, IdentifierPolicy, PolicyError};
