//! The at-rest form of event bodies in the SQLite store: raw deflate against a preset
//! dictionary of the event vocabulary.
//!
//! Why: event bodies are short canonical JSON (a few hundred bytes) that repeat the same field
//! names, event types and values in every row. Per-row zlib finds little to reuse inside one
//! body; a preset dictionary holding that vocabulary lets even the first occurrence of
//! `"type":"message_received","facts":{"content_hash":"` be a back-reference.
//!
//! Only the stored bytes change. The hash chain stays over the canonical bytes ([`super::chain`])
//! and every reader gets the canonical bytes back, so `verify` proves what it proved before: it
//! decodes each body and rehashes it. Damage to a stored body shows as a decoding error or as a
//! hash mismatch on that very event, never as a silently different event:
//! - every byte of a deflate stream carries bits that decode (codes, or a stored block's
//!   literal bytes), so changing any byte changes what it decodes to or makes it undecodable;
//! - decoding must end exactly at the end of the stored bytes, and produce exactly `size` bytes
//!   (the size column), which also bounds how far a damaged row can inflate.
//!
//! (The up to seven padding bits after the final code of a stream, or before a stored block,
//! carry nothing, so a flip confined to them decodes to the same canonical bytes: the event
//! is intact.)
//!
//! **The dictionary is part of the format**: a body written with [`Encoding::DeflateV1`] can only
//! be read with exactly [`DICTIONARY_V1`]. A better dictionary later is a new encoding number,
//! with the old one kept for reading.
//!
//! Events about one message (`message_received`, `case_opened`, `message_joined`,
//! `message_logged`…) repeat what its header says: subject, sender, recipients, Message-Id,
//! references. [`Encoding::DeflateMailV1`] deflates such a body against the vocabulary *and the
//! start of that message*, so those strings cost a back-reference each (on the scale benchmark
//! 128 stored bytes an event on average, against 185 with the vocabulary alone). The row names
//! the message by its content hash, in its first 32 bytes; reading the body reads the message
//! first. Damage to either shows as it does for any body: a decoding error or a hash mismatch on
//! that event (a damaged message is also named by `verify` on its own).

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// How a stored body is encoded: the `encoding` column of `events`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// The canonical bytes as they are (every body before schema 3, and small bodies that did
    /// not shrink).
    Plain = 0,
    /// Raw deflate (no zlib header or checksum: the chain hash is the check) with
    /// [`DICTIONARY_V1`] as preset dictionary.
    DeflateV1 = 1,
    /// The 32 bytes of a stored message's content hash, then raw deflate with the dictionary
    /// [`mail_dictionary`] makes of that message: since schema 5.
    DeflateMailV1 = 2,
}

impl Encoding {
    pub(crate) fn from_column(v: i64) -> Result<Encoding, String> {
        match v {
            0 => Ok(Encoding::Plain),
            1 => Ok(Encoding::DeflateV1),
            2 => Ok(Encoding::DeflateMailV1),
            other => Err(format!(
                "encoding column is {other}, which no version defines"
            )),
        }
    }

    pub(crate) fn column(self) -> i64 {
        self as i64
    }
}

/// The vocabulary of canonical event JSON (src/event.rs, src/model.rs), as whole sample events
/// with typical values, least frequent first: deflate reaches back at most 32 KiB and codes
/// nearer matches in fewer bits, so the most common event (`message_received`) comes last.
/// Never change it: see the module doc.
pub(crate) const DICTIONARY_V1: &[u8] = br#"{"type":"command_ignored","message":"","message_id":"<","from":"","command":{"command":"dismiss","reason":""},"line":{"line":"","problem":""},"reason":"not staff"}
{"type":"clock_reopened","clock":"revocation:crtsh:","state":"pending"}
{"type":"case_merged","case":"CPR-2026-0","into":"CPR-2026-0"}
{"type":"key_reported","case":"CPR-2026-0","key":{"ref":"spki:","evidence":"private_key","algorithm":"rsa"}}
{"type":"message_logged","message":"","message_id":"<","reason":"automatic reply"}
{"type":"clock_revised","clock":"revocation:crtsh:","started_at":"2026-","deadline":"2026-","basis":"br-4.9.1.1-item-","previous_deadline":"2026-","previous_basis":"br-4.9.1.1-item-","decided_by":""}
{"commands":[{"command":"revoked","target":"crtsh:","at":null},{"command":"not_revoking","target":"","reason":""},{"command":"answered","place":"","at":null},{"command":"reason","target":"","item":}],"bad_commands":[{"line":"CPR-","problem":""}],"automation":"auto_generated","automation":"auto_replied","automation":"bounce","automation":"receipt","time_source":"server_time","time_source":"date","time_source":"first_seen","folder":"junk","folder":"sent","staff":"@example","keys":[{"ref":"spki:","evidence":"private_key","algorithm":"ec"}],"cc":["],"reply_to":["],"in_reply_to":["<
"certificates":[{"ref":"sha256:","sha256":"","serial":"","issuer":"CN=","subject":"CN=","sans":["www.],"not_after":"2026-
"rules":[{"id":"key-compromise","br_item":3,"window_secs":86400,"matched":"private key"}]"rules":[{"id":"subscriber-request","br_item":1,"window_secs":86400,"matched":"revoke"}]"rules":[{"id":"misissuance","br_item":9,"window_secs":432000,"matched":""}]
{"type":"clock_stopped","clock":"revocation:crtsh:","state":"dismissed","at":"2026-","basis":"br-4.9.1.1-item-3"}
{"type":"clock_started","clock":"revocation:crtsh:","kind":"revocation","case":"CPR-2026-0","target":"crtsh:","started_at":"2026-","deadline":"2026-","basis":"br-4.9.1.1-item-7"}
{"recorded_at":"2026-01-01T00:00:00Z","event":{"type":"message_joined","case":"CPR-2026-0","message":"","message_id":"<","via":"in-reply-to"}}
{"recorded_at":"2026-01-01T00:00:00Z","event":{"type":"clock_stopped","clock":"preliminary_report:CPR-2026-0","state":"met","at":"2026-01-01T00:00:00Z","basis":"br-4.9.5-24h"}}
{"recorded_at":"2026-01-01T00:00:00Z","event":{"type":"certificate_reported","case":"CPR-2026-0","certificate":{"ref":"crtsh:","crtsh_id":
{"recorded_at":"2026-01-01T00:00:00Z","event":{"type":"case_opened","case":"CPR-2026-0","message":"","message_id":"<","reporter":"","subject":"","opened_at":"2026-01-01T00:00:00Z"}}
{"recorded_at":"2026-01-01T00:00:00Z","event":{"type":"clock_breached","clock":"preliminary_report:CPR-2026-0","deadline":"2026-01-01T00:00:00Z"}}
{"recorded_at":"2026-01-01T00:00:00Z","event":{"type":"clock_started","clock":"preliminary_report:CPR-2026-0","kind":"preliminary_report","case":"CPR-2026-0","started_at":"2026-01-01T00:00:00Z","deadline":"2026-01-01T00:00:00Z","basis":"br-4.9.5-24h"}}
"problems":["PEM block CERTIFICATE: not a valid X.509 certificate"]"certificates":[{"ref":"crtsh:","crtsh_id":}]"rules":[{"id":"misuse","br_item":7,"window_secs":432000,"matched":""}],"references":["<"],"subject":"Re: 
{"recorded_at":"2026-01-01T00:00:00Z","event":{"type":"message_received","facts":{"content_hash":"","size":,"message_id":"<","synthetic_id":false,"folder":"inbox","position":"maildir:/INBOX/cur/","received_at":"2026-01-01T00:00:00Z","time_source":"received","date_header":"2026-01-01T00:00:00Z","from":"","to":["cpr@"],"subject":"","automation":"none","parsed_ok":true}}}"#;

/// How much of the start of a message [`Encoding::DeflateMailV1`] uses: the header and the first
/// lines, where what an event repeats is. Part of the format. Measured on the scale benchmark
/// (whose mail has relays, DKIM and spam verdicts before `From:`), 2 KiB gains as much as 4 or
/// 30 KiB (1 KiB loses an eighth of the gain), and a bound keeps reading a body cheap whatever
/// the size of its message: the message is only inflated that far.
pub(crate) const MAIL_PREFIX: usize = 2048;

/// The preset dictionary of an [`Encoding::DeflateMailV1`] body about the message with content
/// hash `hash` (lowercase hex) whose first bytes (at most [`MAIL_PREFIX`]) are `mail`: the event
/// vocabulary, the hash as the body quotes it, then the message, nearest (cheapest to refer to)
/// last. All of it is within deflate's 32 KiB window.
fn mail_dictionary(hash: &str, mail: &[u8]) -> Vec<u8> {
    let mail = &mail[..mail.len().min(MAIL_PREFIX)];
    let mut d = Vec::with_capacity(DICTIONARY_V1.len() + hash.len() + mail.len());
    d.extend_from_slice(DICTIONARY_V1);
    d.extend_from_slice(hash.as_bytes());
    d.extend_from_slice(mail);
    d
}

/// The content hashes (lowercase hex) of messages a body may quote: its JSON strings of exactly
/// 64 lowercase hex digits, in order. Only a hint for choosing a dictionary (the store never
/// interprets bodies): whether it names a stored message is for the caller to find out.
pub(crate) fn quoted_hashes(body: &[u8]) -> impl Iterator<Item = &str> {
    memchr::memchr_iter(b'"', body).filter_map(move |i| {
        let s = body.get(i + 1..i + 65)?;
        (body.get(i + 65) == Some(&b'"')
            && s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| std::str::from_utf8(s).ok())
        .flatten()
    })
}

/// Bodies shorter than this are kept plain: deflate's block header and code tables cost more
/// than such a body can save, and compressing it costs time for nothing.
const MIN_TO_COMPRESS: usize = 64;

/// The deflate level of bodies. zlib-rs's level 1 codes with fixed Huffman tables; from 2 on a
/// body gets its own tables, which for bodies of a few hundred bytes costs about as much time as
/// the rest of the work of coding it (on the scale benchmark's 62 000 events, against their
/// messages: level 1 128 stored bytes an event in 0.64 s, level 4 110 in 0.92 s). Since the
/// store's tables are kept with the log, deflating is no longer most of a commit's work: a bulk
/// load of the scale benchmark's 100 000 messages took 24.5 s at level 6 against 23.7 at level
/// 1, for a log of 47 MB against 53 (2.5 % of the whole store). Not part of the format: any
/// level inflates the same way.
const LEVEL: Compression = Compression::new(6);

thread_local! {
    /// One compressor and one decompressor per thread, reset between bodies: setting one up
    /// costs more than coding a typical body.
    static COMPRESSOR: RefCell<Compress> =
        RefCell::new(Compress::new_with_window_bits(LEVEL, false, 15));
    static DECOMPRESSOR: RefCell<Decompress> =
        RefCell::new(Decompress::new_with_window_bits(false, 15));
}

/// The at-rest form of a canonical body: `(encoding, stored bytes)`. Deflated when that is
/// smaller, else the body itself.
#[cfg(test)]
fn encode(body: &[u8]) -> (Encoding, std::borrow::Cow<'_, [u8]>) {
    use std::borrow::Cow;
    match deflated(body) {
        Some(z) => (Encoding::DeflateV1, Cow::Owned(z)),
        None => (Encoding::Plain, Cow::Borrowed(body)),
    }
}

/// The [`Encoding::DeflateV1`] bytes of `body` if they are smaller than it, else `None` (keep
/// it plain).
pub(crate) fn deflated(body: &[u8]) -> Option<Vec<u8>> {
    if body.len() < MIN_TO_COMPRESS {
        return None;
    }
    deflate(body, DICTIONARY_V1, Vec::with_capacity(body.len() + 16))
        .filter(|z| z.len() < body.len())
}

/// The stored form of `body` about the message with content hash `hash` (lowercase hex) and
/// first bytes `mail`: [`Encoding::DeflateMailV1`] if that is smaller than both the body and
/// its [`Encoding::DeflateV1`] form, else what [`deflated`] gives.
pub(crate) fn deflated_with_mail(
    body: &[u8],
    hash: &str,
    mail: &[u8],
) -> Option<(Encoding, Vec<u8>)> {
    if body.len() < MIN_TO_COMPRESS {
        return None;
    }
    let mut out = Vec::with_capacity(32 + body.len() + 16);
    out.resize(32, 0);
    if hex::decode_to_slice(hash, &mut out[..32]).is_err() {
        return deflated(body).map(|z| (Encoding::DeflateV1, z));
    }
    match deflate(body, &mail_dictionary(hash, mail), out) {
        Some(z) if z.len() < body.len() => Some((Encoding::DeflateMailV1, z)),
        _ => deflated(body).map(|z| (Encoding::DeflateV1, z)),
    }
}

/// Deflate `body` against `dictionary`, appending to `out`; `None` if the coder failed (then
/// the body is kept plain rather than lost) or would not fit in `out`'s capacity.
fn deflate(body: &[u8], dictionary: &[u8], mut out: Vec<u8>) -> Option<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        c.reset();
        c.set_dictionary(dictionary).ok()?;
        // Only worth keeping if smaller than the body: room for that, plus slack so the coder
        // can finish and say how long it came out.
        match c.compress_vec(body, &mut out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) if c.total_in() == body.len() as u64 => Some(out),
            _ => None,
        }
    })
}

/// The canonical bytes of a stored body, checked to decode whole and to exactly `size` bytes.
/// `size` bounds the work, so a damaged row cannot make us inflate without limit. `mail` gives
/// the first bytes (at least [`MAIL_PREFIX`] of them, or all) of the message with a content hash
/// (lowercase hex), for an [`Encoding::DeflateMailV1`] body.
pub(crate) fn decode(
    encoding: Encoding,
    stored: &[u8],
    size: Option<i64>,
    mail: impl FnOnce(&str) -> Result<std::sync::Arc<[u8]>, String>,
) -> Result<Vec<u8>, String> {
    let size = || -> Result<usize, String> {
        let size = size.ok_or("the body is deflated but its size column is empty")?;
        usize::try_from(size).map_err(|_| format!("the size column is negative ({size})"))
    };
    match encoding {
        Encoding::Plain => Ok(stored.to_vec()),
        Encoding::DeflateV1 => inflate(stored, size()?, DICTIONARY_V1),
        Encoding::DeflateMailV1 => {
            let (hash, stream) = stored.split_at_checked(32).ok_or_else(|| {
                format!(
                    "the body is {} bytes, too short to name its message",
                    stored.len()
                )
            })?;
            let size = size()?;
            let hash = hex::encode(hash);
            let mail = mail(&hash).map_err(|e| {
                format!("the body is deflated against message {hash}, which cannot be read: {e}")
            })?;
            inflate(stream, size, &mail_dictionary(&hash, &mail))
        }
    }
}

/// Deflate codes at most 258 bytes in 2 bits: no stream decodes to more than this many bytes
/// per stored byte, so a size column above it is damage, found before any work.
const MAX_RATIO: usize = 1032;

fn inflate(stored: &[u8], size: usize, dictionary: &[u8]) -> Result<Vec<u8>, String> {
    if size > stored.len().saturating_mul(MAX_RATIO) {
        return Err(format!(
            "its size column says {size} bytes, more than {} deflated bytes can hold",
            stored.len()
        ));
    }
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        d.reset(false);
        d.set_dictionary(dictionary)
            .map_err(|e| format!("cannot set the dictionary: {e}"))?;
        // Up to one byte more than expected (a stream that goes on shows as too long), grown
        // as the output comes, so memory follows what the bytes decode to.
        let limit = size.saturating_add(1);
        let mut out = Vec::with_capacity(limit.min(64 * 1024));
        let status = loop {
            let at = d.total_in() as usize;
            let status = d
                .decompress_vec(
                    &stored[at.min(stored.len())..],
                    &mut out,
                    FlushDecompress::Finish,
                )
                .map_err(|e| format!("cannot decompress the body: {e}"))?;
            if status == Status::StreamEnd || out.len() >= limit || out.len() < out.capacity() {
                break status;
            }
            out.reserve_exact((out.capacity() * 2).min(limit) - out.len());
        };
        if out.len() != size {
            return Err(format!(
                "the body decompresses to {}{} bytes, but its size column says {size}",
                out.len(),
                if out.len() > size { "+" } else { "" }
            ));
        }
        if status != Status::StreamEnd {
            return Err("the deflated body is cut short".into());
        }
        if d.total_in() != stored.len() as u64 {
            return Err(format!(
                "the deflated body ends {} bytes before the stored bytes do",
                stored.len() as u64 - d.total_in()
            ));
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn no_mail(_: &str) -> Result<Arc<[u8]>, String> {
        Err("no mail here".into())
    }

    const RECEIVED: &[u8] = br#"{"recorded_at":"2026-11-29T21:37:41Z","event":{"type":"message_received","facts":{"content_hash":"a64391cc97cb1f3b3c3fe650e32f2b9dc42fe0f39c99c053e40c0ac78815a554","size":3319,"message_id":"<bench-1230.980170@reporter.test>","synthetic_id":false,"folder":"inbox","position":"maildir:/srv/mail/INBOX/cur/1767299435.M1230P1.bench,S=3319","received_at":"2026-01-01T20:30:35Z","time_source":"received","date_header":"2026-01-01T20:30:35Z","from":"reporter4091@reporter6.test","to":["cpr@example-ca.test"],"subject":"Phishing site using your certificate 1230","automation":"none","certificates":[{"ref":"crtsh:1831779118","crtsh_id":1831779118}],"rules":[{"id":"misuse","br_item":7,"window_secs":432000,"matched":"Phishing"}],"parsed_ok":true}}}"#;

    #[test]
    fn bodies_round_trip_and_shrink() {
        let (enc, z) = encode(RECEIVED);
        assert_eq!(enc, Encoding::DeflateV1);
        assert!(
            z.len() * 2 < RECEIVED.len(),
            "{} of {}",
            z.len(),
            RECEIVED.len()
        );
        let z = z.into_owned();
        assert_eq!(
            decode(enc, &z, Some(RECEIVED.len() as i64), no_mail).unwrap(),
            RECEIVED
        );
        // The coders are reused per thread: the next body comes out whole too.
        let other = br#"{"recorded_at":"2026-11-29T21:37:42Z","event":{"type":"clock_breached","clock":"preliminary_report:CPR-2026-0003","deadline":"2026-01-02T00:03:36Z"}}"#;
        let (enc2, z2) = encode(other);
        assert_eq!(
            decode(enc2, &z2, Some(other.len() as i64), no_mail).unwrap(),
            &other[..]
        );
        assert_eq!(
            decode(enc, &z, Some(RECEIVED.len() as i64), no_mail).unwrap(),
            RECEIVED
        );
    }

    #[test]
    fn small_or_incompressible_bodies_stay_plain() {
        assert_eq!(encode(b"{}").0, Encoding::Plain);
        let mut noise = Vec::new();
        let mut x: u32 = 7;
        for _ in 0..500 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            noise.push((x >> 16) as u8);
        }
        let (enc, z) = encode(&noise);
        assert_eq!(enc, Encoding::Plain);
        assert_eq!(&*z, &noise[..]);
        assert_eq!(decode(enc, &z, None, no_mail).unwrap(), noise);
    }

    #[test]
    fn every_damaged_byte_fails_or_decodes_differently() {
        let (enc, z) = encode(RECEIVED);
        let size = Some(RECEIVED.len() as i64);
        for i in 0..z.len() {
            for flip in [0x01u8, 0xff] {
                let mut bad = z.to_vec();
                bad[i] ^= flip;
                if let Ok(out) = decode(enc, &bad, size, no_mail) {
                    assert_ne!(out, RECEIVED, "byte {i} ^ {flip:#x} went unnoticed");
                }
            }
        }
        // Cut short, or with bytes after the end.
        assert!(decode(enc, &z[..z.len() - 1], size, no_mail).is_err());
        let mut longer = z.to_vec();
        longer.push(0);
        assert!(decode(enc, &longer, size, no_mail).is_err());
        // A size column that lies, either way, and cannot make it inflate past itself.
        assert!(decode(enc, &z, Some(RECEIVED.len() as i64 - 1), no_mail).is_err());
        assert!(decode(enc, &z, Some(RECEIVED.len() as i64 + 1), no_mail).is_err());
        assert!(decode(enc, &z, Some(-1), no_mail).is_err());
        assert!(decode(enc, &z, Some(1 << 40), no_mail).is_err());
        assert!(decode(enc, &z, None, no_mail).is_err());
        assert!(Encoding::from_column(7).is_err());
    }

    const MAIL: &[u8] = b"Return-Path: <reporter4091@reporter6.test>\r\nFrom: Reporter <reporter4091@reporter6.test>\r\nTo: cpr@example-ca.test\r\nSubject: Phishing site using your certificate 1230\r\nMessage-ID: <bench-1230.980170@reporter.test>\r\n\r\nHello,\r\nPhishing at https://crt.sh/?id=1831779118\r\n";
    const HASH: &str = "a64391cc97cb1f3b3c3fe650e32f2b9dc42fe0f39c99c053e40c0ac78815a554";

    fn mail_of(hash: &str) -> Result<Arc<[u8]>, String> {
        if hash == HASH {
            Ok(Arc::from(MAIL))
        } else {
            Err(format!("no message {hash}"))
        }
    }

    #[test]
    fn bodies_about_a_message_are_deflated_against_it() {
        assert_eq!(quoted_hashes(RECEIVED).collect::<Vec<_>>(), [HASH]);
        assert_eq!(quoted_hashes(br#"{"a":"ab","b":"sha256:00"}"#).count(), 0);
        let (enc, z) = deflated_with_mail(RECEIVED, HASH, MAIL).unwrap();
        assert_eq!(enc, Encoding::DeflateMailV1);
        assert_eq!(hex::encode(&z[..32]), HASH);
        let alone = deflated(RECEIVED).unwrap();
        assert!(z.len() + 40 < alone.len(), "{} vs {}", z.len(), alone.len());
        let size = Some(RECEIVED.len() as i64);
        assert_eq!(decode(enc, &z, size, mail_of).unwrap(), RECEIVED);
        // Its message is needed, and must be that message.
        let err = decode(enc, &z, size, no_mail).unwrap_err();
        assert!(err.contains(HASH) && err.contains("no mail here"), "{err}");
        let other =
            |_: &str| -> Result<Arc<[u8]>, String> { Ok(Arc::from(&b"another message"[..])) };
        if let Ok(out) = decode(enc, &z, size, other) {
            assert_ne!(out, RECEIVED);
        }
        // Every damaged byte, in the hash that names the message or in the stream.
        for i in 0..z.len() {
            for flip in [0x01u8, 0xff] {
                let mut bad = z.clone();
                bad[i] ^= flip;
                if let Ok(out) = decode(enc, &bad, size, mail_of) {
                    assert_ne!(out, RECEIVED, "byte {i} ^ {flip:#x} went unnoticed");
                }
            }
        }
        assert!(decode(enc, &z[..31], size, mail_of).is_err());
        assert!(decode(enc, &z, None, mail_of).is_err());
        // A message longer than the prefix: only the prefix counts, both ways.
        let mut long = MAIL.to_vec();
        long.resize(MAIL_PREFIX + 5000, b'x');
        let (enc, z) = deflated_with_mail(RECEIVED, HASH, &long).unwrap();
        let prefix = |_: &str| -> Result<Arc<[u8]>, String> { Ok(Arc::from(&long[..MAIL_PREFIX])) };
        assert_eq!(decode(enc, &z, size, prefix).unwrap(), RECEIVED);
        // A body too short to gain is kept plain; a bad hash falls back to no message.
        assert!(deflated_with_mail(b"{}", HASH, MAIL).is_none());
        assert_eq!(
            deflated_with_mail(RECEIVED, "zz", MAIL).unwrap().0,
            Encoding::DeflateV1
        );
    }
}
