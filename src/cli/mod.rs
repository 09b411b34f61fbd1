//! The command line's work, as library functions (`main.rs` only parses arguments): the
//! [`commands`], the [`view`]s they print, and the [`lookup`]s that read cases and clocks from
//! the store's tables; [`audit`] the auditor's export and SLA report.

pub mod audit;
pub mod commands;
pub mod lookup;
pub mod view;
