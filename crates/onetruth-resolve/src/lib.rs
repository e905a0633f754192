//! Resolution decisions, pure and deterministic: which identifiers may link records
//! ([`IdentifierPolicy`]), how two records compare field by field ([`compare`]), how much that
//! comparison says about them being one person ([`score`], Fellegi–Sunter) and what a customer's
//! golden profile is ([`golden`]).
//!
//! No IO: the store feeds records in and persists what comes out, so every decision here can be
//! tested with small fixtures and replayed.

pub mod compare;
mod golden;
mod policy;
pub mod resolver;
pub mod score;
pub mod train;

pub use golden::{
    Golden, Provenance, RecordView, SURVIVORSHIP_ATTRIBUTES, Survivorship, SurvivorshipRule,
    Valued, golden, golden_with,
};
pub use policy::{BlockRule, DEFAULT_BLOCKLIST, IdentifierPolicy, PolicyError};
pub use resolver::{Matching, Resolution, Resolver, ResolverConfig};
