//! Which node applies which projection, on PostgreSQL with many nodes.
//!
//! Each projection has one owner among the live nodes, chosen by
//! rendezvous hashing of its name and the nodes' ids: every node computes
//! the same owner from the same live set, and a node joining or leaving
//! moves only the projections it wins or held. The owner applies the
//! projection's events; the others only follow its checkpoint, told of
//! every move by `NOTIFY` on the schema's checkpoint channel (and, as a
//! fallback, by looking at the stored checkpoint every second).
//!
//! A follower that is not the owner still passes over stretches of events
//! its projection does not handle (in memory, writing nothing). When events
//! it handles wait and the checkpoint has not moved for [`GRACE`], it
//! applies them itself and goes on doing so for [`ACTING`]: an owner that
//! died, stopped or stalled delays a projection by [`GRACE`], not by the
//! [`DEAD_AFTER`](super::nodes::DEAD_AFTER) it takes to be declared dead.
//! Ownership saves work; it is not what keeps an event from being applied
//! twice: every batch still locks the checkpoint row (`FOR UPDATE`), so
//! two nodes that both think they own a projection (a live set that just
//! changed) apply each event once.
//!
//! A node that stops cleanly says so on the same channel: the others move
//! its projections at once, without waiting for their next heartbeat.
//!
//! On SQLite (one process) every follower applies its own projection.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use uuid::Uuid;

use super::follower::{Follower, Log};

/// How long events wait for their projection's owner before another node
/// applies them.
pub(crate) const GRACE: Duration = Duration::from_millis(500);

/// How long a node that stepped in for an owner goes on applying before it
/// looks again at who owns the projection.
pub(crate) const ACTING: Duration = Duration::from_secs(10);

/// The prefix of the checkpoint channel; the schema follows it. The SQL
/// that notifies (`checkpoints::write`) builds the same name.
const CHANNEL_PREFIX: &str = "herald_cp_";

/// PostgreSQL's limit on a channel name (longer ones it refuses).
const MAX_CHANNEL: usize = 63;

/// The checkpoint channel of a schema, as `checkpoints::write` names it
/// (`left('herald_cp_' || current_schema(), 63)`).
pub(crate) fn channel(schema: &str) -> String {
    let mut name = format!("{CHANNEL_PREFIX}{schema}");
    while name.len() > MAX_CHANNEL {
        name.pop();
    }
    name
}

/// The owner of projection `name` among `live` nodes (none if no node is live).
pub fn owner_of(name: &str, live: &[Uuid]) -> Option<Uuid> {
    live.iter().copied().max_by_key(|node| score(name, *node))
}

/// FNV-1a of the node and the projection, then mixed so that every bit
/// depends on every byte (FNV alone leaves the high bits to the node):
/// stable across processes and versions, unlike std's hasher.
fn score(name: &str, node: Uuid) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.as_bytes().iter().chain(name.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // The 64-bit finaliser of MurmurHash3.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// This node and the live nodes as it last saw them.
pub(crate) struct Ownership {
    pub node: Uuid,
    pub live: watch::Receiver<Vec<Uuid>>,
    /// Nodes that said they left (`Node::leave`), before the heartbeat's
    /// next look at the live nodes: their projections move at once.
    pub departed: Mutex<HashSet<Uuid>>,
}

/// What a node that leaves sends on the checkpoint channel, before its id.
pub(crate) const LEFT: &str = "left";

impl Ownership {
    pub fn new(node: Uuid, live: watch::Receiver<Vec<Uuid>>) -> Self {
        Self {
            node,
            live,
            departed: Mutex::new(HashSet::new()),
        }
    }

    /// Whether this node owns projection `name` (it counts itself live).
    pub fn owns(&self, name: &str) -> bool {
        let departed = self.departed.lock().map(|d| d.clone()).unwrap_or_default();
        let mut nodes: Vec<Uuid> = self
            .live
            .borrow()
            .iter()
            .copied()
            .filter(|n| !departed.contains(n))
            .collect();
        if !nodes.contains(&self.node) {
            nodes.push(self.node);
        }
        owner_of(name, &nodes) == Some(self.node)
    }
}

/// Whether a follower applies what it handles: as owner, or stepping in
/// for an owner that left events waiting.
#[derive(Default)]
pub(crate) struct Role {
    /// Since when events have waited for the owner, and the checkpoint then.
    waiting: Option<(Instant, i64)>,
    /// Stepped in for the owner: applies until then.
    acting_until: Option<Instant>,
}

impl Role {
    pub(crate) fn applies(&mut self, f: &Follower, log: &Log) -> bool {
        if self.acting_until.is_some_and(|t| Instant::now() < t) {
            return true;
        }
        self.acting_until = None;
        if log.owners.get().is_none_or(|o| o.owns(f.name())) {
            return true;
        }
        let cp = *f.checkpoint.borrow();
        match self.waiting {
            Some((since, at)) if at == cp && since.elapsed() >= GRACE => {
                tracing::info!(
                    projection = f.name(),
                    position = cp,
                    "its owner left events waiting; applying them here"
                );
                self.waiting = None;
                self.acting_until = Some(Instant::now() + ACTING);
                true
            }
            _ => false,
        }
    }

    /// Events wait for the owner: until the checkpoint moves, or [`GRACE`].
    pub(crate) async fn wait_for_owner(&mut self, f: &Follower) {
        let cp = *f.checkpoint.borrow();
        let since = match self.waiting {
            Some((since, at)) if at == cp => since,
            _ => {
                let now = Instant::now();
                self.waiting = Some((now, cp));
                now
            }
        };
        let left = GRACE.saturating_sub(since.elapsed());
        let mut moved = f.checkpoint.subscribe();
        let _ = tokio::time::timeout(left, moved.wait_for(|p| *p > cp)).await;
    }
}

impl Role {
    /// The follower applied (or passed) events itself: nothing waits.
    pub(crate) fn applied(&mut self) {
        self.waiting = None;
    }
}

/// Moves the followers' checkpoints as their owners (on any node) notify
/// them, reconnecting after failures, until the task is aborted.
pub(crate) async fn follow_owners(
    pool: PgPool,
    channel: String,
    followers: Vec<Arc<Follower>>,
    owners: Arc<OnceLock<Ownership>>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if listener.listen(&channel).await.is_ok() {
                    backoff = Duration::from_millis(200);
                    while let Ok(n) = listener.recv().await {
                        let Some((name, position)) = n.payload().split_once(' ') else {
                            continue;
                        };
                        if name == LEFT {
                            if let (Some(o), Ok(node)) = (owners.get(), position.parse::<Uuid>())
                                && let Ok(mut departed) = o.departed.lock()
                            {
                                departed.insert(node);
                            }
                            continue;
                        }
                        let (Some(f), Ok(position)) = (
                            followers.iter().find(|f| f.name() == name),
                            position.parse::<i64>(),
                        ) else {
                            continue;
                        };
                        f.advance(position);
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "checkpoint listener cannot connect"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_agrees_and_a_leaving_node_moves_only_its_own() {
        let nodes: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let names: Vec<String> = (0..40).map(|i| format!("projection_{i}")).collect();
        let before: Vec<Uuid> = names
            .iter()
            .map(|n| owner_of(n, &nodes).unwrap_or_default())
            .collect();
        // Spread: each node owns some of 40.
        for node in &nodes {
            assert!(before.contains(node), "{node} owns nothing");
        }
        // The order the live set is listed in does not matter.
        let reversed: Vec<Uuid> = nodes.iter().rev().copied().collect();
        for (n, owner) in names.iter().zip(&before) {
            assert_eq!(owner_of(n, &reversed).as_ref(), Some(owner));
        }
        // Node 0 leaves: what the others owned stays theirs.
        let rest = &nodes[1..];
        for (n, owner) in names.iter().zip(&before) {
            let after = owner_of(n, rest).unwrap_or_default();
            if *owner != nodes[0] {
                assert_eq!(after, *owner, "{n} moved though its owner stayed");
            } else {
                assert!(rest.contains(&after));
            }
        }
        assert_eq!(owner_of("x", &[]), None);
    }

    #[test]
    fn a_long_schema_gives_a_channel_postgresql_accepts() {
        assert_eq!(channel("public"), "herald_cp_public");
        assert_eq!(channel(&"s".repeat(100)).len(), MAX_CHANNEL);
    }
}
