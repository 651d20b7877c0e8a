//! The phonebook (claims 17–22): recipient entries that clients refer to under a constraint. Each entry
//! carries visibility labels: `everyone` (every client sharing a grouping with its owner), named clients,
//! named groupings; an entry without labels is personal to its owner.
//!
//! This crate is pure: the model and its validation, a ranked in-memory search index, and CSV and vCard
//! (3.0 and 4.0) import and export. Who may see an entry is decided by the caller's visibility function
//! (the supervisor's `Access`), so the index never needs to know groupings.

pub mod csv;
mod index;
mod model;
pub mod vcard;

pub use index::{Hit, Index, Tier};
pub use model::{Entry, EntryFields, FieldError, Label, normalize_text};
