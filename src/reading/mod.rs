//! Reading one message (pure): from raw bytes to its [`facts::MessageFacts`].
//!
//! [`parse`] turns MIME into text and parts; [`extract`] finds the certificates, keys and staff
//! commands it names; [`rules`] decides which BR 4.9.1.1 item its wording matches; [`staff`]
//! decides whether the desk wrote it; [`limits`] bounds how much of it is searched; [`facts`]
//! puts it all together at the moment of receipt. Nothing here reads a file, a socket or the
//! clock (docs/ARCHITECTURE.md, "The layers").

pub mod extract;
pub mod facts;
pub mod limits;
pub mod parse;
pub mod revocation;
pub mod rules;
pub mod staff;
