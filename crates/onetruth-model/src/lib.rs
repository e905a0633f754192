//! Canonical types shared by every onetruth crate: the [`SourceRecord`] a connector's mapping
//! produces, typed [`Identifier`]s and their normalization, and [`CustomerId`].
//!
//! No IO and no async here: everything is a pure function of its inputs, so the same record
//! normalizes the same way at ingest, at lookup and in tests.

mod normalize;
mod record;

pub use normalize::{NormalizeError, Normalizer, PhoneRegion, normalize_email};
pub use record::*;
