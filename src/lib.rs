//! cprwatch: watches a Certificate Authority's problem-report mailbox and keeps the Baseline
//! Requirements' response clocks.
//!
//! The shape (README "Layout"): sources read raw bytes → the [`pipeline`] prepares them off the
//! committing thread ([`facts`] parses and extracts, pure) → the desk records them: [`engine`]
//! threads messages into cases and evaluates clocks through [`projection`] (pure) → the
//! [`store`] appends hash-chained events → [`view`] renders them. Only the edges
//! ([`source`], [`store`], [`service`], [`commands`]) do I/O.

pub mod backoff;
pub mod clock;
pub mod commands;
pub mod config;
pub mod correlate;
pub mod desk;
pub mod engine;
pub mod escape;
pub mod event;
pub mod extract;
pub mod facts;
pub mod folder_sync;
pub mod ids;
pub mod limits;
pub mod logging;
pub mod lookup;
pub mod model;
pub mod parse;
pub mod pipeline;
pub mod priority;
pub mod projection;
pub mod rules;
pub mod service;
pub mod shutdown;
pub mod source;
pub mod staff;
pub mod store;
pub mod tables;
pub mod timefmt;
pub mod view;
