//! The per-app hash chain.
//!
//! `hash(e) = SHA-256(hash(previous event of the same app) || canonical(e))`,
//! with 32 zero bytes before an app's first event; hashes are shown as
//! lower-case hex. Each app's chain stands alone, so an auditor verifies their
//! own app without seeing anyone else's events.
//!
//! What the chain catches: any change to an event's envelope or body, a
//! change of its position, and the removal or reordering of any event that is
//! followed by another event of the same app. Removing events from the very
//! end leaves a shorter valid chain; compare the reported head with one noted
//! earlier to catch that.

use domain::{RecordedEvent, StoredEvent};
use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// The "previous hash" of an app's first event.
pub const GENESIS: Hash = [0; 32];

pub fn link(previous: &Hash, canonical: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(canonical);
    hasher.finalize().into()
}

/// Why a chain does not verify, at the first event where it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub position: i64,
    pub reason: String,
}

/// Walks one app's events in position order.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    previous: Hash,
    last_position: i64,
    events: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            previous: GENESIS,
            last_position: 0,
            events: 0,
        }
    }
}

impl ChainVerifier {
    pub fn push(&mut self, event: &RecordedEvent) -> Result<(), ChainBreak> {
        self.follows(event.position)?;
        let canonical = event.canonical_bytes().map_err(|e| ChainBreak {
            position: event.position,
            reason: format!("the event has no canonical form: {e}"),
        })?;
        let expected = link(&self.previous, &canonical);
        if hex::encode(expected) != event.hash {
            return Err(self.mismatch(event.position));
        }
        self.advance(expected, event.position);
        Ok(())
    }

    /// [`push`](Self::push) for an event as stored: the hash is computed
    /// over the stored text as it is (everything Herald writes is in
    /// canonical form), and only if that does not match is the text parsed
    /// and put in canonical form, as `push` would. `scratch` is a buffer
    /// kept between calls.
    pub fn push_stored(
        &mut self,
        event: &StoredEvent,
        scratch: &mut Vec<u8>,
    ) -> Result<(), ChainBreak> {
        self.follows(event.position)?;
        event.canonical_bytes_as_stored(scratch);
        let expected = link(&self.previous, scratch);
        if expected.as_slice() == event.hash.as_slice() {
            self.advance(expected, event.position);
            return Ok(());
        }
        let parsed = event.to_recorded().map_err(|e| ChainBreak {
            position: event.position,
            reason: e.to_string(),
        })?;
        self.push(&parsed)
    }

    fn follows(&self, position: i64) -> Result<(), ChainBreak> {
        if position <= self.last_position {
            return Err(ChainBreak {
                position,
                reason: format!(
                    "position {position} does not follow position {}",
                    self.last_position
                ),
            });
        }
        Ok(())
    }

    fn mismatch(&self, position: i64) -> ChainBreak {
        ChainBreak {
            position,
            reason: if self.events == 0 {
                "the stored hash does not match: this event was altered, or it is not the \
                 app's first event (earlier events were removed)"
                    .to_owned()
            } else {
                format!(
                    "the stored hash does not match: this event was altered, or the chain \
                     link to the previous event (position {}) was broken by removing, \
                     reordering or altering events",
                    self.last_position
                )
            },
        }
    }

    fn advance(&mut self, hash: Hash, position: i64) {
        self.previous = hash;
        self.last_position = position;
        self.events += 1;
    }

    pub fn head_position(&self) -> i64 {
        self.last_position
    }

    pub fn head_hash(&self) -> String {
        hex::encode(self.previous)
    }

    pub fn events(&self) -> u64 {
        self.events
    }
}
