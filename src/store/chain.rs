//! The hash chain over the event log, as pure functions.
//!
//! Both backends and `verify` use exactly this code, so a log written by one backend verifies
//! with the other and an auditor can re-implement the chain from this page alone:
//!
//! ```text
//! hash_n = hex(SHA-256("{seq}\n{prev_hash}\n" ++ body_n))      prev_hash_1 = "0" × 64
//! ```
//!
//! Raw messages are keyed by the SHA-256 of their bytes, so they verify by rehashing.

use super::StoredEvent;
use sha2::{Digest, Sha256};

/// `prev_hash` of the first event: there is nothing before it.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain hash of one event.
pub fn event_hash(seq: u64, prev_hash: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(format!("{seq}\n{prev_hash}\n").as_bytes());
    h.update(body);
    hex::encode(h.finalize())
}

/// Lowercase hex SHA-256 of a message's raw bytes: its key in the store.
pub fn content_hash(raw: &[u8]) -> String {
    hex::encode(Sha256::digest(raw))
}

/// Whether `s` has the shape of a hash this module makes (64 lowercase hex digits).
#[cfg(test)]
pub(crate) fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Chain `bodies` onto a log whose last event is `head` (`None`: the log is empty).
pub(crate) fn extend(head: Option<(u64, &str)>, bodies: Vec<Vec<u8>>) -> Vec<StoredEvent> {
    let (mut seq, mut prev) = match head {
        Some((seq, hash)) => (seq, hash.to_string()),
        None => (0, GENESIS.to_string()),
    };
    bodies
        .into_iter()
        .map(|body| {
            seq += 1;
            let hash = event_hash(seq, &prev, &body);
            let prev_hash = std::mem::replace(&mut prev, hash.clone());
            StoredEvent {
                seq,
                body,
                prev_hash,
                hash,
            }
        })
        .collect()
}

/// Walks a log in order and says what is wrong with the first event that does not fit.
///
/// It checks the fields in the order that names the actual damage: a changed `hash` shows as a
/// hash mismatch on that very event (not as a broken link on the next), a changed `prev_hash`
/// as a broken link, a changed body as a hash mismatch.
#[derive(Debug)]
pub(crate) struct ChainChecker {
    next_seq: u64,
    prev_hash: String,
}

impl Default for ChainChecker {
    fn default() -> Self {
        ChainChecker {
            next_seq: 1,
            prev_hash: GENESIS.to_string(),
        }
    }
}

impl ChainChecker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `seq` is the next event, checked before its row is read: with the link implied
    /// (rows that keep no `prev_hash`), a missing row would otherwise show as the next row's
    /// hash mismatch.
    pub(crate) fn expect(&self, seq: u64) -> Result<(), String> {
        if seq == self.next_seq {
            return Ok(());
        }
        Err(format!(
            "sequence gap: expected seq {}, found seq {seq} (event #{} is missing)",
            self.next_seq, self.next_seq
        ))
    }

    /// Check the next event. On success the checker moves on to expect its successor.
    pub(crate) fn check(
        &mut self,
        seq: u64,
        body: &[u8],
        prev_hash: &str,
        hash: &str,
    ) -> Result<(), String> {
        if seq != self.next_seq {
            return Err(format!(
                "sequence gap: expected seq {}, found seq {seq}",
                self.next_seq
            ));
        }
        if prev_hash != self.prev_hash {
            let what = if seq == 1 {
                "the genesis value (64 zeros)".to_string()
            } else {
                format!("the hash of seq {}", seq - 1)
            };
            return Err(format!(
                "prev_hash {prev_hash:?} does not link to {what}, {:?}",
                self.prev_hash
            ));
        }
        let computed = event_hash(seq, prev_hash, body);
        if hash != computed {
            return Err(format!(
                "hash mismatch: stored {hash:?}, computed {computed:?} from seq, prev_hash and body"
            ));
        }
        self.next_seq = seq + 1;
        self.prev_hash = computed;
        Ok(())
    }

    /// How many events have passed so far.
    pub(crate) fn checked(&self) -> u64 {
        self.next_seq - 1
    }

    /// Hash of the last good event (the genesis value before any).
    pub(crate) fn head(&self) -> &str {
        &self.prev_hash
    }
}

/// Check that a message's bytes hash to its key.
pub(crate) fn check_message(key: &str, raw: &[u8]) -> Result<(), String> {
    let actual = content_hash(raw);
    if actual == key {
        Ok(())
    } else {
        Err(format!("its bytes hash to {actual}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_hash_is_fixed() {
        // Fixed so that any change to the chain formula fails loudly: it would orphan every
        // existing log.
        let expected = {
            let mut h = Sha256::new();
            h.update(format!("1\n{GENESIS}\n{{}}").as_bytes());
            hex::encode(h.finalize())
        };
        assert_eq!(event_hash(1, GENESIS, b"{}"), expected);
    }

    #[test]
    fn extend_links_and_checker_accepts() {
        let first = extend(None, vec![b"a".to_vec(), b"b".to_vec()]);
        let more = extend(Some((2, &first[1].hash)), vec![b"c".to_vec()]);
        assert_eq!(first[0].prev_hash, GENESIS);
        assert_eq!(first[1].prev_hash, first[0].hash);
        assert_eq!(more[0].seq, 3);
        assert_eq!(more[0].prev_hash, first[1].hash);
        let mut c = ChainChecker::new();
        for e in first.iter().chain(&more) {
            c.check(e.seq, &e.body, &e.prev_hash, &e.hash).unwrap();
        }
        assert_eq!(c.checked(), 3);
        assert_eq!(c.head(), more[0].hash);
    }

    #[test]
    fn checker_names_the_damage() {
        let ev = extend(None, vec![b"a".to_vec(), b"b".to_vec()]);
        let mut c = ChainChecker::new();
        let e = &ev[0];
        assert!(
            c.check(2, &e.body, &e.prev_hash, &e.hash)
                .unwrap_err()
                .contains("gap")
        );
        assert!(
            c.check(1, b"x", &e.prev_hash, &e.hash)
                .unwrap_err()
                .contains("hash mismatch")
        );
        assert!(
            c.check(1, &e.body, &ev[1].hash, &e.hash)
                .unwrap_err()
                .contains("prev_hash")
        );
        assert!(is_hash(&e.hash) && !is_hash("ABC"));
        assert!(check_message(&content_hash(b"x"), b"x").is_ok());
        assert!(check_message(&content_hash(b"x"), b"y").is_err());
    }
}
