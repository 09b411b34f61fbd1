//! Telling people (an edge): handing alerts, receipts and canaries to the SMTP server. What to
//! say and when is decided in the pure core (`deciding::alerts`); this folder only delivers
//! and reports how delivery went (docs/ARCHITECTURE.md, "The layers").

pub mod compose;
pub mod smtp;
