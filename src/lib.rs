//! cprwatch: watches a Certificate Authority's problem-report mailbox and keeps the Baseline
//! Requirements' response clocks.
//!
//! The layers (docs/ARCHITECTURE.md is the map):
//! - the pure core, which decides: [`domain`] (the words), [`reading`] (one message to its
//!   facts) and [`deciding`] (threading, clocks, cases, the events that record them);
//! - the edges, which do I/O and decide nothing: [`source`] (mail in), [`store`] (the log and
//!   its tables), [`service`] (the long-running process), [`cli`] (commands and views),
//!   [`config`], [`evidence`] (signed checkpoints of the log), [`fetch`] (OCSP, CRLs and
//!   certificates over HTTP for the revocation checks);
//! - where they meet: the [`pipeline`] (sources → prepare → record) and the [`desk`] (the one
//!   owner of the store and the engine). [`escape`] makes reporter text inert for every output.

pub mod cli;
pub mod config;
pub mod deciding;
pub mod desk;
pub mod domain;
pub mod escape;
pub mod evidence;
pub mod fetch;
pub mod notify;
pub mod pipeline;
pub mod reading;
pub mod service;
pub mod source;
pub mod store;
pub(crate) mod tls;
pub mod web;
