//! cprwatch: watches a Certificate Authority's problem-report mailbox and keeps the Baseline
//! Requirements' response clocks. See `DESIGN.md` (shared) and `README.md`.

pub mod config;
pub mod model;
pub mod rules;
pub mod store;
pub mod timefmt;
