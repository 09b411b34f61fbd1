//! Helpers for integration tests that need real servers. Each test binary that uses them says
//! `mod support;`.
#![allow(dead_code)]

pub mod dovecot;
