//! Log setup for the service: human-readable lines on stderr, level from `RUST_LOG`
//! (default `info`). Never logs message bodies: reporters send private keys.
//!
//! async-imap traces every byte it sends and receives (the LOGIN command with the password,
//! whole message bodies) through the `log` crate, which tracing-subscriber forwards. Those
//! records are dropped here whatever `RUST_LOG` says.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal; a log file or journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::registry()
        .with(filter_fn(|meta| !is_wire_trace(meta.target())))
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi),
        )
        .try_init();
}

/// Log targets that carry raw protocol traffic.
fn is_wire_trace(target: &str) -> bool {
    target == "async_imap" || target.starts_with("async_imap::")
}

#[cfg(test)]
mod tests {
    #[test]
    fn imap_wire_traces_are_dropped() {
        assert!(super::is_wire_trace("async_imap::imap_stream"));
        assert!(super::is_wire_trace("async_imap"));
        assert!(!super::is_wire_trace("async_imap_other"));
        assert!(!super::is_wire_trace("cprwatch::source::imap"));
    }
}
