//! The behaviour every [`Store`] backend must share, as functions that take a store and panic
//! where it differs: the unit tests run them against [`super::MemoryStore`] and
//! [`super::SqliteStore`], `tests/postgres_store.rs` against [`super::PostgresStore`] (which
//! needs a running server, so it cannot be a unit test). Public for that test only, hence
//! `#[doc(hidden)]`: one copy of the contract, not one per backend.

use super::{Batch, Checkpoint, FolderState, NewMessage, Store, StoreError, Verification, chain};

/// A message with these bytes.
pub fn msg(text: &str) -> NewMessage {
    NewMessage::new(text.as_bytes().to_vec())
}

/// A batch of these messages (each at a position of its own, `file:test/<i>/<hash>`) and events.
pub fn batch(messages: &[&str], events: &[&str]) -> Batch {
    let messages: Vec<_> = messages.iter().map(|m| msg(m)).collect();
    let positions = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let k = m.content_hash();
            (format!("file:test/{i}/{k}"), k.to_string())
        })
        .collect();
    Batch {
        messages,
        positions,
        events: events.iter().map(|e| e.as_bytes().to_vec()).collect(),
        ..Batch::default()
    }
}

fn is_ok(v: &Verification) -> bool {
    v.bad_event.is_none() && v.bad_message.is_none()
}

/// The behaviour every backend must share.
pub fn store_contract(store: &mut dyn Store) {
    assert!(store.events().unwrap().is_empty());
    assert!(is_ok(&store.verify().unwrap()));

    let first = store
        .commit(batch(
            &["Subject: one\n\nhi", "Subject: two\n\nho"],
            &["e1", "e2"],
        ))
        .unwrap();
    assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(first[0].prev_hash, chain::GENESIS);
    assert_eq!(first[1].prev_hash, first[0].hash);

    // Re-reading the same message adds no message and keeps the first position value.
    let one = msg("Subject: one\n\nhi");
    let (k1, raw1) = (one.content_hash().to_string(), one.raw().to_vec());
    let k2 = msg("Subject: two\n\nho").content_hash().to_string();
    let again = store
        .commit(Batch {
            messages: vec![one],
            positions: vec![
                ("file:test/0/".to_string() + &k1, k1.clone()),
                ("file:test/0/".to_string() + &k1, k2.clone()),
            ],
            events: vec![b"e3".to_vec()],
            ..Batch::default()
        })
        .unwrap();
    assert_eq!(again[0].seq, 3);
    assert_eq!(again[0].prev_hash, first[1].hash);
    assert_eq!(
        store.position(&format!("file:test/0/{k1}")).unwrap(),
        Some(k1.clone())
    );
    assert_eq!(store.position("file:nowhere").unwrap(), None);
    assert!(store.has_message(&k1).unwrap());
    assert!(!store.has_message(&chain::content_hash(b"nope")).unwrap());
    assert_eq!(store.message(&k1).unwrap(), Some(raw1));
    assert_eq!(store.message(&chain::content_hash(b"nope")).unwrap(), None);

    // A message compressed ahead (as IMAP folder tasks do) that is already stored adds nothing.
    let mut again = msg("Subject: one\n\nhi");
    again.compress(&crate::store::MessageCodec::default());
    store
        .commit(Batch {
            messages: vec![again],
            ..Batch::default()
        })
        .unwrap();

    // A position may name a message stored earlier without carrying its bytes again.
    store
        .commit(Batch {
            positions: vec![("maildir:new/x".into(), k2.clone())],
            ..Batch::default()
        })
        .unwrap();
    assert_eq!(store.position("maildir:new/x").unwrap(), Some(k2));

    // A bad batch is rejected whole: nothing of it is written. (A message whose key is not the
    // hash of its bytes cannot be built: `NewMessage` computes the key.)
    let before = store.events().unwrap();
    let good = msg("Subject: three\n\n");
    let bad = Batch {
        messages: vec![good.clone()],
        positions: vec![("p".into(), chain::content_hash(b"never stored"))],
        events: vec![b"x".to_vec()],
        ..Batch::default()
    };
    let err = store.commit(bad).unwrap_err();
    assert!(matches!(err, StoreError::BadBatch(_)), "{err}");
    assert!(err.to_string().contains("nothing was written"));
    assert_eq!(store.events().unwrap(), before);
    assert!(!store.has_message(good.content_hash()).unwrap());

    let events = store.events().unwrap();
    assert_eq!(events.len(), 3);
    let v = store.verify().unwrap();
    assert!(is_ok(&v), "{v}");
    assert_eq!(v.events_ok, 3);
    assert_eq!(v.head, events[2].hash);
    assert_eq!(v.messages_checked, 2);
}

/// Checkpoints, prefix scans and folder health behave the same in both backends.
pub fn imap_contract(store: &mut dyn Store) {
    assert_eq!(store.checkpoint("cpr", "INBOX").unwrap(), None);
    let mut b = batch(&["one"], &["{\"e\":1}"]);
    let key = b.messages[0].content_hash().to_string();
    b.positions = vec![
        ("imap:cpr/INBOX/7/1".into(), key.clone()),
        ("imap:cpr/INBOX/7/12".into(), key.clone()),
        ("imap:cpr/Junk/7/1".into(), key.clone()),
    ];
    let cp = Checkpoint {
        mailbox: "cpr".into(),
        folder: "INBOX".into(),
        uidvalidity: 7,
        last_uid: 12,
    };
    b.checkpoints = vec![cp.clone()];
    store.commit(b).unwrap();
    assert_eq!(store.checkpoint("cpr", "INBOX").unwrap(), Some(cp.clone()));
    assert_eq!(
        store.positions_with_prefix("imap:cpr/INBOX/7/").unwrap(),
        ["imap:cpr/INBOX/7/1", "imap:cpr/INBOX/7/12"]
    );

    // A batch that fails validation advances nothing: not the log, not the checkpoint.
    let mut bad = batch(&[], &["{\"e\":2}"]);
    bad.positions = vec![("imap:cpr/INBOX/7/13".into(), "00".repeat(32))];
    bad.checkpoints = vec![Checkpoint {
        last_uid: 99,
        ..cp.clone()
    }];
    assert!(store.commit(bad).is_err());
    assert_eq!(store.checkpoint("cpr", "INBOX").unwrap(), Some(cp));

    let st = FolderState {
        mailbox: "cpr".into(),
        folder: "INBOX".into(),
        role: "inbox".into(),
        last_sync_at: Some("2026-03-01T10:00:00Z".into()),
        last_error: None,
        last_error_at: None,
    };
    store.set_folder_state(&st).unwrap();
    let failing = FolderState {
        last_error: Some("connection refused".into()),
        last_error_at: Some("2026-03-01T10:05:00Z".into()),
        ..st
    };
    store.set_folder_state(&failing).unwrap();
    assert_eq!(store.folder_states().unwrap(), [failing]);
}

/// Positions are listed by any prefix, whether it ends at a folder or inside a name (the SQLite
/// store keeps a position's folder and name apart, schema 7). Expects a store without positions.
pub fn positions_contract(store: &mut dyn Store) {
    let places = [
        "maildir:/r/INBOX/a1",
        "maildir:/r/INBOX/b2",
        "maildir:/r/INBOX2/c3",
        "maildir:/r/Junk/d4",
        "file:x",
    ];
    let mut b = batch(&["one", "two", "three", "four", "five"], &[]);
    for (p, place) in b.positions.iter_mut().zip(places) {
        p.0 = place.into();
    }
    store.commit(b.clone()).unwrap();
    for (prefix, want) in [
        ("maildir:/r/", &places[..4]),
        ("maildir:/r/INBOX/", &places[..2]),
        ("maildir:/r/INBOX", &places[..3]),
        ("maildir:/r/INBOX/a", &places[..1]),
        ("maildir:/r/INBOX/a1", &places[..1]),
        ("maildir:/r/INBOX/a10", &[]),
        ("", &places[..]),
        ("file:", &places[4..]),
    ] {
        let mut got = store.positions_with_prefix(prefix).unwrap();
        got.sort();
        let mut want = want.to_vec();
        want.sort();
        assert_eq!(got, want, "prefix {prefix:?}");
    }
    for (place, key) in &b.positions {
        assert_eq!(store.position(place).unwrap().as_ref(), Some(key));
    }
    assert_eq!(store.position("maildir:/r/INBOX/zz").unwrap(), None);
}
