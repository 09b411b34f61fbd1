//! cprwatch: watches a Certificate Authority's problem-report mailbox and keeps the Baseline
//! Requirements' response clocks. See `DESIGN.md` (shared) and `README.md`.

pub mod model;
pub mod parse;
pub mod source;
pub mod staff;
pub mod timefmt;
