//! Telling people (an edge): handing alerts, receipts and canaries to the SMTP server. When to
//! say something and to whom is decided in the pure core (`deciding::alerts`,
//! `deciding::receipts`); `compose` writes the messages (pure: `now` is an argument, bytes
//! come out), and [`smtp`] only delivers and reports how delivery went (docs/ARCHITECTURE.md,
//! "The layers").

pub(crate) mod compose;
pub mod smtp;
