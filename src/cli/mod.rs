//! The command line's work, as library functions (`main.rs` only parses arguments): the
//! [`commands`], the [`view`]s they print, and the [`lookup`]s that read cases and clocks from
//! the store's tables; [`audit`] the auditor's export and SLA report; [`store_copy`] the move of a
//! desk from one store to another.

pub mod audit;
pub mod commands;
pub mod lookup;
pub mod store_copy;
pub mod view;
