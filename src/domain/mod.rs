//! The domain's words: the types every layer speaks. Pure data; no I/O, no decisions.
//!
//! - [`ids`]: case numbers, clock ids and certificate and key names, each built in one place;
//! - [`model`]: what a message names (certificates, keys, staff commands) and where it came from;
//! - [`event`]: the typed events of the log and their canonical encoding;
//! - [`timefmt`]: time in one format everywhere.

pub mod event;
pub mod ids;
pub mod model;
pub mod timefmt;
