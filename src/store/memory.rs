//! The in-memory backend: for stateless replay (`cprwatch check` over a folder) and tests.
//!
//! It keeps the same contract as SQLite — same validation, same chain — so the engine cannot
//! tell them apart, and tests written against it hold for the durable store too.

use super::{
    BadEvent, BadMessage, Batch, Checkpoint, FolderState, Store, StoreError, StoredEvent,
    Verification, chain,
};
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct MemoryStore {
    events: Vec<StoredEvent>,
    messages: BTreeMap<String, Vec<u8>>,
    positions: BTreeMap<String, String>,
    checkpoints: BTreeMap<(String, String), Checkpoint>,
    folder_states: BTreeMap<(String, String), FolderState>,
}

impl MemoryStore {
    /// Direct access for tests that simulate tampering; the [`Store`] API itself has no way to
    /// change what was committed.
    #[cfg(test)]
    pub(crate) fn tamper(&mut self) -> (&mut Vec<StoredEvent>, &mut BTreeMap<String, Vec<u8>>) {
        (&mut self.events, &mut self.messages)
    }
}

impl Store for MemoryStore {
    fn events(&self) -> Result<Vec<StoredEvent>, StoreError> {
        Ok(self.events.clone())
    }

    fn has_message(&self, content_hash: &str) -> Result<bool, StoreError> {
        Ok(self.messages.contains_key(content_hash))
    }

    fn message(&self, content_hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.messages.get(content_hash).cloned())
    }

    fn position(&self, position: &str) -> Result<Option<String>, StoreError> {
        Ok(self.positions.get(position).cloned())
    }

    fn commit(&mut self, batch: Batch) -> Result<Vec<StoredEvent>, StoreError> {
        // Validate first, then apply: nothing below can fail, which makes it all or nothing.
        super::validate_batch(&batch, |k| Ok(self.messages.contains_key(k)))?;
        for m in batch.messages {
            if !self.messages.contains_key(m.content_hash()) {
                self.messages
                    .insert(m.content_hash().to_string(), m.into_raw());
            }
        }
        for (position, key) in batch.positions {
            self.positions.entry(position).or_insert(key);
        }
        for cp in batch.checkpoints {
            self.checkpoints
                .insert((cp.mailbox.clone(), cp.folder.clone()), cp);
        }
        let head = self.events.last().map(|e| (e.seq, e.hash.as_str()));
        let appended = chain::extend(head, batch.events);
        self.events.extend(appended.iter().cloned());
        Ok(appended)
    }

    fn checkpoint(&self, mailbox: &str, folder: &str) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self
            .checkpoints
            .get(&(mailbox.to_string(), folder.to_string()))
            .cloned())
    }

    fn positions_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .positions
            .range(prefix.to_string()..)
            .take_while(|(p, _)| p.starts_with(prefix))
            .map(|(p, _)| p.clone())
            .collect())
    }

    fn set_folder_state(&mut self, state: &FolderState) -> Result<(), StoreError> {
        self.folder_states
            .insert((state.mailbox.clone(), state.folder.clone()), state.clone());
        Ok(())
    }

    fn folder_states(&self) -> Result<Vec<FolderState>, StoreError> {
        Ok(self.folder_states.values().cloned().collect())
    }

    fn verify(&self) -> Result<Verification, StoreError> {
        let mut checker = chain::ChainChecker::new();
        let bad_event = self.events.iter().find_map(|e| {
            checker
                .check(e.seq, &e.body, &e.prev_hash, &e.hash)
                .err()
                .map(|problem| BadEvent {
                    seq: e.seq,
                    problem,
                })
        });
        let bad_message = self.messages.iter().find_map(|(key, raw)| {
            chain::check_message(key, raw)
                .err()
                .map(|problem| BadMessage {
                    content_hash: key.clone(),
                    problem,
                })
        });
        Ok(Verification {
            events_ok: checker.checked(),
            head: checker.head().to_string(),
            messages_checked: self.messages.len() as u64,
            bad_event,
            bad_message,
        })
    }
}
