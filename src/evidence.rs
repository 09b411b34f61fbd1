//! Evidence beyond the hash chain: signed checkpoints of the log's head (README "For
//! auditors").
//!
//! The chain proves that no event in the middle was changed, but not that the log still ends
//! where it did: delete the last N events and the rest is still a valid chain; rewrite an event
//! and hash every later one afresh and the chain is valid again. A **checkpoint** is an
//! Ed25519 signature over the head of the log at one moment,
//!
//! ```text
//! cprwatch checkpoint v1
//! seq 1234
//! head <hex SHA-256 chain hash of event #1234>
//! at 2026-11-30T09:00:00Z
//! key ed25519:<first 16 hex digits of SHA-256 of the 32-byte public key>
//! ```
//!
//! (these exact bytes, [`statement`], are signed), made by a key the store does not hold
//! (`[audit] signing_key_file`). `verify` holds every checkpoint against the log with only the
//! public key: a log cut back no longer reaches a signed seq, a rewritten one no longer has the
//! signed hash there, and neither can be signed again without the private key.
//!
//! Signing and judging are pure (keys and the log's hashes in, findings out); only
//! [`load_signing_key`] and [`load_public_key`] read files.

use std::collections::BTreeMap;
use std::path::Path;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::domain::model::Timestamp;
use crate::domain::timefmt;
pub use crate::store::SignedCheckpoint;

/// Why a key could not be used, naming the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {what} {}: {source} — check the path in [audit] and its permissions", .path.display())]
    Read {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "signing key {} is readable by others (mode {mode:04o}): a private key must be mode 0600 — run `chmod 600 {}` (and replace the key if others may have read it)",
        .path.display(), .path.display()
    )]
    Exposed { path: std::path::PathBuf, mode: u32 },
    #[error(
        "{} is not {what}: {problem} — make one with `openssl genpkey -algorithm ed25519 -out FILE` (private) or `cprwatch audit public-key` (public)",
        .path.display()
    )]
    Parse {
        what: &'static str,
        path: std::path::PathBuf,
        problem: String,
    },
}

/// The Ed25519 private key at `path` (PKCS#8 PEM, as `openssl genpkey -algorithm ed25519`
/// writes it). Refused unless only its owner may read it: a key others can read signs
/// nothing an auditor should believe.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let meta = std::fs::metadata(path).map_err(|source| KeyError::Read {
        what: "signing key",
        path: path.to_path_buf(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        what: "signing key",
        path: path.to_path_buf(),
        source,
    })?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| KeyError::Parse {
        what: "an Ed25519 private key (PKCS#8 PEM)",
        path: path.to_path_buf(),
        problem: e.to_string(),
    })
}

/// The Ed25519 public key at `path`: a `PUBLIC KEY` PEM (what `cprwatch audit public-key` or
/// `openssl pkey -pubout` print). A private key file is refused here: an auditor's copy of the
/// public key must not be a copy of the private one.
pub fn load_public_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        what: "public key",
        path: path.to_path_buf(),
        source,
    })?;
    VerifyingKey::from_public_key_pem(&pem).map_err(|e| KeyError::Parse {
        what: "an Ed25519 public key (PEM \"PUBLIC KEY\")",
        path: path.to_path_buf(),
        problem: e.to_string(),
    })
}

/// The public key as PEM (SPKI), for `cprwatch audit public-key`.
pub fn public_key_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(Default::default())
        .unwrap_or_default()
}

/// A short name of a public key that a checkpoint carries: `ed25519:` and the first 16 hex
/// digits of the SHA-256 of its 32 bytes. It says which key to check with; the signature
/// proves it.
pub fn key_id(key: &VerifyingKey) -> String {
    let h = hex::encode(Sha256::digest(key.as_bytes()));
    format!("ed25519:{}", &h[..16])
}

/// The exact bytes a checkpoint's signature covers.
pub fn statement(seq: u64, head_hash: &str, at: &str, key_id: &str) -> Vec<u8> {
    format!("cprwatch checkpoint v1\nseq {seq}\nhead {head_hash}\nat {at}\nkey {key_id}\n")
        .into_bytes()
}

/// Sign the head `(seq, head_hash)` of the log as it is at `at`.
pub fn sign(key: &SigningKey, seq: u64, head_hash: &str, at: Timestamp) -> SignedCheckpoint {
    let at = timefmt::format(at);
    let key_id = key_id(&key.verifying_key());
    let signature = key.sign(&statement(seq, head_hash, &at, &key_id));
    SignedCheckpoint {
        id: 0,
        seq,
        head_hash: head_hash.to_string(),
        at,
        key_id,
        signature: hex::encode(signature.to_bytes()),
    }
}

/// Whether `c` was signed by `key` as it stands.
fn signature_holds(c: &SignedCheckpoint, key: &VerifyingKey) -> bool {
    let Ok(bytes) = hex::decode(&c.signature) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(&bytes) else {
        return false;
    };
    key.verify(&statement(c.seq, &c.head_hash, &c.at, &c.key_id), &sig)
        .is_ok()
}

/// One checkpoint on one line, for the daily mail (an outside copy that `verify --checkpoints`
/// reads back from a saved message).
pub fn to_line(c: &SignedCheckpoint) -> String {
    format!(
        "cprwatch-checkpoint v1 seq={} head={} at={} key={} sig={}",
        c.seq, c.head_hash, c.at, c.key_id, c.signature
    )
}

/// Every checkpoint line in `text` (a saved digest mail, or lines collected from several);
/// other lines are ignored. Values are checked by `verify`, not here.
pub fn parse_lines(text: &str) -> Vec<SignedCheckpoint> {
    text.lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("cprwatch-checkpoint v1 ")?;
            let mut fields = BTreeMap::new();
            for part in rest.split_whitespace() {
                let (k, v) = part.split_once('=')?;
                fields.insert(k, v);
            }
            Some(SignedCheckpoint {
                id: 0,
                seq: fields.get("seq")?.parse().ok()?,
                head_hash: fields.get("head")?.to_string(),
                at: fields.get("at")?.to_string(),
                key_id: fields.get("key")?.to_string(),
                signature: fields.get("sig")?.to_string(),
            })
        })
        .collect()
}

/// How long before a checkpoint an event may say it was recorded and still be committed after
/// it (a commit in progress while `audit checkpoint` signs from cron).
const BACKDATE_SLACK: time::Duration = time::Duration::minutes(10);

/// What `verify` knows of the log for judging checkpoints.
#[derive(Debug, Default)]
pub struct LogView {
    /// The last event of the log whose chain holds (0: none).
    pub head: u64,
    /// The chain hash of each event a checkpoint names, for those at or below `head`.
    pub hashes: BTreeMap<u64, String>,
    /// When each event after the last checkpoint's seq was recorded ([`wanted`]).
    pub recorded: BTreeMap<u64, Timestamp>,
}

/// Where a checkpoint came from, for the messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Store,
    /// Read from a file given to `verify --checkpoints` (an outside copy).
    File,
}

/// What is wrong, one finding per checkpoint or event. Each is tampering or a checkpoint that
/// proves nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Signed by a key none of those given.
    OtherKey { c: SignedCheckpoint, origin: Origin },
    /// Names a known key, but the signature does not cover what the row says.
    BadSignature { c: SignedCheckpoint, origin: Origin },
    /// Names an event the log no longer reaches.
    Cut { c: SignedCheckpoint, head: u64 },
    /// The event it names has another hash now.
    Differs {
        c: SignedCheckpoint,
        now: String,
        /// The latest checkpoint before it that still matches.
        last_match: Option<SignedCheckpoint>,
    },
    /// An event after the checkpoint's seq that says it was recorded well before it.
    Backdated {
        seq: u64,
        recorded_at: Timestamp,
        c: SignedCheckpoint,
    },
}

/// The judgement of every checkpoint against the log.
#[derive(Debug, Default)]
pub struct Judgement {
    pub findings: Vec<Finding>,
    /// Checkpoints whose signature held (whether or not they matched the log).
    pub signed: usize,
    /// The checkpoint covering the most events that holds and matches.
    pub latest: Option<SignedCheckpoint>,
    /// Events after `latest` (all of them without one).
    pub uncovered: u64,
}

/// The seqs `verify` must look up for `checkpoints`, and from which seq on it must note when
/// each event was recorded: only after the last checkpoint (an event inserted before it
/// changes the hash it signed), so memory stays with the uncovered tail, not the log; with no
/// checkpoint, none.
pub fn wanted(checkpoints: &[SignedCheckpoint]) -> (Vec<u64>, u64) {
    let mut seqs: Vec<u64> = checkpoints.iter().map(|c| c.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    let since = seqs.last().map_or(u64::MAX, |s| s.saturating_add(1));
    (seqs, since)
}

/// Judge `checkpoints` (each with where it came from) against the log with `keys`.
pub fn judge(
    checkpoints: &[(SignedCheckpoint, Origin)],
    keys: &[VerifyingKey],
    log: &LogView,
) -> Judgement {
    let ids: Vec<(String, &VerifyingKey)> = keys.iter().map(|k| (key_id(k), k)).collect();
    let mut j = Judgement::default();
    let mut holding: Vec<&SignedCheckpoint> = Vec::new();
    for (c, origin) in checkpoints {
        let Some((_, key)) = ids.iter().find(|(id, _)| *id == c.key_id) else {
            j.findings.push(Finding::OtherKey {
                c: c.clone(),
                origin: *origin,
            });
            continue;
        };
        if !signature_holds(c, key) {
            j.findings.push(Finding::BadSignature {
                c: c.clone(),
                origin: *origin,
            });
            continue;
        }
        j.signed += 1;
        holding.push(c);
    }
    holding.sort_by(|a, b| a.seq.cmp(&b.seq).then_with(|| a.at.cmp(&b.at)));
    let genesis = crate::store::chain::GENESIS;
    let mut last_match: Option<&SignedCheckpoint> = None;
    for c in &holding {
        if c.seq > log.head {
            j.findings.push(Finding::Cut {
                c: (*c).clone(),
                head: log.head,
            });
            continue;
        }
        let now = if c.seq == 0 {
            Some(genesis.to_string())
        } else {
            log.hashes.get(&c.seq).cloned()
        };
        match now {
            Some(h) if h == c.head_hash => last_match = Some(c),
            other => j.findings.push(Finding::Differs {
                c: (*c).clone(),
                now: other.unwrap_or_default(),
                last_match: last_match.cloned(),
            }),
        }
    }
    // Events after a checkpoint that say they were recorded before it were not there when it
    // was signed: put in afterwards, by someone other than cprwatch as it ran. Each is named
    // against the checkpoint covering the most events it postdates.
    for c in holding.iter().rev() {
        let Ok(at) = timefmt::parse(&c.at) else {
            continue;
        };
        if let Some((&seq, &recorded_at)) = log
            .recorded
            .range(c.seq + 1..)
            .find(|(_, r)| **r < at - BACKDATE_SLACK)
            && !j
                .findings
                .iter()
                .any(|f| matches!(f, Finding::Backdated { seq: s, .. } if *s == seq))
        {
            j.findings.push(Finding::Backdated {
                seq,
                recorded_at,
                c: (*c).clone(),
            });
        }
    }
    j.latest = last_match.cloned();
    j.uncovered = log.head - j.latest.as_ref().map_or(0, |c| c.seq);
    j
}

/// One finding in words: what was found, and what to do.
pub fn describe(f: &Finding, expected: &[String]) -> String {
    let from = |o: &Origin| match o {
        Origin::Store => "stored checkpoint",
        Origin::File => "checkpoint from --checkpoints",
    };
    match f {
        Finding::OtherKey { c, origin } => format!(
            "the {} signed at {} (covering event #{}) is signed by another key, {} (expected {}): \
             it proves nothing about this log — if the desk has replaced its key, verify again \
             with the old public key added (--public-key OLD.pem); otherwise someone stored a \
             checkpoint of their own",
            from(origin),
            c.at,
            c.seq,
            c.key_id,
            expected.join(" or ")
        ),
        Finding::BadSignature { c, origin } => format!(
            "the {} signed at {} (covering event #{}) does not match its signature: the \
             checkpoint was altered after it was signed — compare it with the mailed copy",
            from(origin),
            c.at,
            c.seq
        ),
        Finding::Cut { c, head } => format!(
            "the log was cut after event #{head}: the checkpoint signed at {} covers events up \
             to #{}, so {} signed event(s) are gone — restore the store from a backup and find \
             out who removed them",
            c.at,
            c.seq,
            c.seq - head
        ),
        Finding::Differs { c, now, last_match } => {
            let range = match last_match {
                Some(m) => format!(
                    "the checkpoint signed at {} (event #{}) still matches, so the change is \
                     in events #{}..#{}",
                    m.at,
                    m.seq,
                    m.seq + 1,
                    c.seq
                ),
                None => format!("the change is in events #1..#{}", c.seq),
            };
            format!(
                "event #{} is not the one signed at {}: its chain hash is now {}, the checkpoint \
                 signed {} — events were changed, removed or inserted and the chain hashed \
                 afresh; {range}; restore the store from a backup",
                c.seq,
                c.at,
                if now.is_empty() { "unreadable" } else { now },
                c.head_hash
            )
        }
        Finding::Backdated {
            seq,
            recorded_at,
            c,
        } => format!(
            "event #{seq} says it was recorded at {}, before the checkpoint signed at {} that \
             covers only events up to #{}: it was added to the log after that, not by cprwatch \
             as it ran — a forged event; restore the store from a backup",
            timefmt::format(*recorded_at),
            c.at,
            c.seq
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn at(s: &str) -> Timestamp {
        timefmt::parse(s).unwrap()
    }

    fn view(head: u64, hashes: &[(u64, &str)]) -> LogView {
        LogView {
            head,
            hashes: hashes.iter().map(|(s, h)| (*s, h.to_string())).collect(),
            recorded: BTreeMap::new(),
        }
    }

    /// A throwaway key as `openssl genpkey -algorithm ed25519` wrote it, and what `openssl
    /// pkey -pubout` printed for it: the formats the README tells desks to use.
    const OPENSSL_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAWes7Y+e/jVjNveXiBBq9Gz27LIWYICpUTwT4ieqMgJ\n-----END PRIVATE KEY-----\n";
    const OPENSSL_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAEdsuEMeyb7Efn2pIB8wM/3/H6JMv8/kuKfy6ginqDmE=\n-----END PUBLIC KEY-----\n";

    #[test]
    fn keys_as_openssl_writes_them_load_and_a_readable_private_key_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = (dir.path().join("k.pem"), dir.path().join("p.pem"));
        std::fs::write(&private, OPENSSL_KEY).unwrap();
        std::fs::write(&public, OPENSSL_PUB).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = load_signing_key(&private).unwrap_err().to_string();
        assert!(e.contains("mode 0640") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
        let k = load_signing_key(&private).unwrap();
        assert_eq!(public_key_pem(&k.verifying_key()), OPENSSL_PUB);
        assert_eq!(load_public_key(&public).unwrap(), k.verifying_key());
        let e = load_public_key(&private).unwrap_err().to_string();
        assert!(e.contains("is not an Ed25519 public key"), "{e}");
    }

    #[test]
    fn a_checkpoint_signs_its_statement_and_a_line_round_trips() {
        let k = key(1);
        let c = sign(&k, 5, "ab", at("2026-11-30T09:00:00Z"));
        assert_eq!(c.at, "2026-11-30T09:00:00Z");
        assert!(c.key_id.starts_with("ed25519:") && c.key_id.len() == 24);
        assert!(signature_holds(&c, &k.verifying_key()));
        assert!(!signature_holds(&c, &key(2).verifying_key()));
        let line = to_line(&c);
        assert_eq!(
            parse_lines(&format!("Subject: x\n\n  {line}\nother\n")),
            vec![c.clone()]
        );
        let mut changed = c.clone();
        changed.seq = 6;
        assert!(!signature_holds(&changed, &k.verifying_key()));
    }

    #[test]
    fn judge_names_cut_rewritten_other_key_and_uncovered() {
        let (k, other) = (key(1), key(2));
        let t = at("2026-11-30T09:00:00Z");
        let c3 = sign(&k, 3, "h3", t);
        let c5 = sign(&k, 5, "h5", t);
        let pubs = [k.verifying_key()];
        let all = |cs: &[&SignedCheckpoint]| -> Vec<(SignedCheckpoint, Origin)> {
            cs.iter().map(|c| ((*c).clone(), Origin::Store)).collect()
        };
        // Intact, two events after the last checkpoint.
        let j = judge(&all(&[&c3, &c5]), &pubs, &view(7, &[(3, "h3"), (5, "h5")]));
        assert!(j.findings.is_empty(), "{:?}", j.findings);
        assert_eq!((j.signed, j.uncovered), (2, 2));
        assert_eq!(wanted(&[c5.clone(), c3.clone()]), (vec![3, 5], 6));
        assert_eq!(wanted(&[]).1, u64::MAX);
        // Cut back to 4.
        let j = judge(&all(&[&c3, &c5]), &pubs, &view(4, &[(3, "h3")]));
        assert!(matches!(&j.findings[..], [Finding::Cut { head: 4, .. }]));
        assert!(describe(&j.findings[0], &[]).starts_with("the log was cut after event #4:"));
        // Rewritten and re-hashed from 4 on.
        let j = judge(&all(&[&c3, &c5]), &pubs, &view(7, &[(3, "h3"), (5, "x5")]));
        let [Finding::Differs { last_match, .. }] = &j.findings[..] else {
            panic!("{:?}", j.findings)
        };
        assert_eq!(last_match.as_ref().map(|m| m.seq), Some(3));
        assert!(describe(&j.findings[0], &[]).contains("events #4..#5"));
        // Another key.
        let forged = sign(&other, 7, "h7", t);
        let j = judge(
            &all(&[&c3, &forged]),
            &pubs,
            &view(7, &[(3, "h3"), (7, "h7")]),
        );
        assert!(matches!(&j.findings[..], [Finding::OtherKey { .. }]));
        // A row altered after signing.
        let mut altered = c5.clone();
        altered.seq = 4;
        let j = judge(&all(&[&altered]), &pubs, &view(7, &[(4, "h5")]));
        assert!(matches!(&j.findings[..], [Finding::BadSignature { .. }]));
    }

    #[test]
    fn an_event_after_a_checkpoint_recorded_well_before_it_is_forged() {
        let k = key(1);
        let c = sign(&k, 3, "h3", at("2026-11-30T09:00:00Z"));
        let mut log = view(5, &[(3, "h3")]);
        log.recorded.insert(4, at("2026-11-30T08:55:00Z"));
        log.recorded.insert(5, at("2026-11-30T09:30:00Z"));
        let pubs = [k.verifying_key()];
        let j = judge(&[(c.clone(), Origin::Store)], &pubs, &log);
        assert!(j.findings.is_empty(), "within the slack: {:?}", j.findings);
        log.recorded.insert(5, at("2026-08-13T10:00:00Z"));
        let j = judge(&[(c, Origin::Store)], &pubs, &log);
        assert!(
            matches!(&j.findings[..], [Finding::Backdated { seq: 5, .. }]),
            "{:?}",
            j.findings
        );
    }
}
