//! Deciding (pure): messages' facts in, cases, clocks and the events that record them out.
//!
//! [`threading`] puts messages into cases; [`clock`] holds the BR windows and what a clock's
//! state is at a moment; [`cases`] derives cases and clocks from the messages received by a
//! moment; [`tables`] writes them as the versioned rows the store keeps; [`derive`] turns each
//! batch and each tick into the events that record what changed; [`alerts`] and [`receipts`]
//! decide who is told what, and when; [`sla`] sums up how fast the desk answered. Time is always an argument
//! (docs/ARCHITECTURE.md, "The layers").

pub mod alerts;
pub mod canary;
pub mod cases;
pub mod clock;
pub mod derive;
pub mod dispatch;
pub mod fold;
pub(crate) mod receipts;
pub mod recorded;
pub mod revocation;
pub mod sla;
pub mod tables;
pub mod threading;
