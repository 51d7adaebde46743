//! Inboxes: every pending delivery, each agent's FIFO queue and in-flight window, acks,
//! redelivery (on reconnect and on ack timeout), and the `max_deliver` cap — as a state machine
//! without IO, in the style of `quinn-proto`. It never reads a clock: inputs carry the current
//! time (`next_for`, `handle_timeout`), [`Inboxes::poll_timeout`] says when it next needs to
//! wake, and [`Inboxes::next_for`] yields what to transmit (or to give up on) one at a time, so
//! that the IO shell (the engine) can check the connection's buffer between two sends. The
//! shell encodes and writes lines, records dead letters and keeps the store in step.
//!
//! Where a delivery is redelivered: [`Inboxes::handle_timeout`] (its ack timed out) and
//! [`Inboxes::handle_disconnect`] (its agent's connection went): both put it back at the front
//! of the agent's queue, in delivery order, and the next `next_for` sends it again.

mod ack_ids;
mod budget;
mod delivery;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codex_weave_runtime::AckMode;

pub use delivery::{actions_for, moved_delivery, new_delivery};
pub use delivery::{Delivery, DeliveryKind};

use super::recorded::Recorded;
use super::state::Map;
use ack_ids::AckIds;
use budget::MemoryBudget;

/// What [`Inboxes::next_for`] asks of the shell.
#[derive(Debug)]
pub enum Next {
    /// Write delivery `id` to its target now (`count` already counts this attempt). `first`:
    /// its first attempt. A delivery that wants no ack is no longer pending: it comes `done`.
    Send {
        id: u64,
        first: bool,
        done: Option<Delivery>,
    },
    /// Sent `max_deliver` times and never acked: given up, taken out of the inboxes.
    GiveUp(Delivery),
}

/// One agent's inbox.
#[derive(Debug, Default)]
struct Inbox {
    /// Deliveries waiting to be sent, oldest first (redeliveries keep their original place).
    queue: VecDeque<u64>,
    /// Deliveries sent on the current connection and not yet acked.
    inflight: BTreeSet<u64>,
    /// Ack id (the record's id — what a `message.ack` names as `corr` — or an action id of an
    /// action group) → the deliveries it may settle.
    ack_ids: AckIds,
    /// Payload bytes of its pending deliveries (queued and in flight).
    bytes: usize,
}

#[derive(Debug)]
pub struct Inboxes {
    deliveries: Map<u64, Delivery>,
    /// Session id → agent id → inbox.
    inboxes: Map<String, Map<String, Inbox>>,
    /// Ack timeouts: (deadline, delivery id, delivery count when armed).
    timers: BinaryHeap<Reverse<(Instant, u64, u32)>>,
    next_id: u64,
    max_inflight: usize,
    max_deliver: u32,
    /// Payload bytes of pending messages held in memory, and the most there may be: past it a
    /// message waits as a stub and is read from the store when it is sent.
    budget: MemoryBudget,
}

impl Inboxes {
    /// Inboxes where an agent has at most `max_inflight` unacked deliveries and a delivery is
    /// given up after `max_deliver` attempts.
    pub fn new(max_inflight: usize, max_deliver: u32) -> Self {
        Self {
            deliveries: Map::default(),
            inboxes: Map::default(),
            timers: BinaryHeap::new(),
            next_id: 1,
            max_inflight,
            max_deliver,
            budget: MemoryBudget::new(usize::MAX),
        }
    }

    /// At most `bytes` of pending messages' payloads in memory (the rest waits in the store).
    pub fn with_memory_budget(mut self, bytes: usize) -> Self {
        self.budget = MemoryBudget::new(bytes);
        self
    }

    /// Payload bytes of pending messages held in memory.
    pub fn hot_bytes(&self) -> usize {
        self.budget.hot()
    }

    /// Delivery `did`'s record, read back from the store, is in memory again.
    pub fn warm(&mut self, did: u64, record: Arc<Recorded>) {
        if let Some(d) = self.deliveries.get_mut(&did) {
            self.budget.warm(d, record);
        }
    }

    /// When memory is past its budget, delivery `did` keeps only a stub of its record (it is
    /// read from the store again if it must be sent again).
    pub fn cool_if_over(&mut self, did: u64) {
        if let Some(d) = self.deliveries.get_mut(&did) {
            self.budget.cool_if_over(d);
        }
    }

    /// Payload bytes pending for agent `aid` (queued and in flight).
    pub fn bytes(&self, sid: &str, aid: &str) -> usize {
        self.inboxes
            .get(sid)
            .and_then(|s| s.get(aid))
            .map_or(0, |i| i.bytes)
    }

    /// The id for the next delivery.
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Ids below `next` are taken (by deliveries the store kept).
    pub fn reserve_ids(&mut self, next: u64) {
        self.next_id = self.next_id.max(next);
    }

    /// Forgets everything (before a restore from the store).
    pub fn clear(&mut self) {
        self.deliveries.clear();
        self.inboxes.clear();
        self.timers.clear();
        self.budget.clear();
    }

    fn inbox(&mut self, sid: &str, aid: &str) -> Option<&mut Inbox> {
        self.inboxes.get_mut(sid)?.get_mut(aid)
    }

    /// Queues delivery `d` behind what its target already has.
    pub fn handle_send(&mut self, d: Delivery) {
        // Looked up by borrowed ids: the keys are copied once per agent, not per delivery.
        if self.inbox(&d.session, &d.target).is_none() {
            self.inboxes
                .entry(d.session.clone())
                .or_default()
                .insert(d.target.clone(), Inbox::default());
        }
        let Some(inbox) = self.inbox(&d.session, &d.target) else {
            return;
        };
        inbox.ack_ids.insert(d.envelope.env.id.clone(), d.id);
        for ack_id in d.action_ids() {
            inbox.ack_ids.insert(ack_id, d.id);
        }
        inbox.queue.push_back(d.id);
        inbox.bytes += d.size;
        let mut d = d;
        self.budget.add(&mut d);
        self.deliveries.insert(d.id, d);
    }

    /// Whether agent `aid` may take one more delivery now (its in-flight window has room).
    pub fn window_open(&self, sid: &str, aid: &str) -> bool {
        self.inboxes
            .get(sid)
            .and_then(|s| s.get(aid))
            .is_none_or(|i| i.inflight.len() < self.max_inflight)
    }

    /// The next thing to do for online agent `aid` at `now`: send its oldest queued delivery
    /// (arming its ack timer), or give one up; `None` when its queue is empty or its in-flight
    /// window is full.
    pub fn next_for(&mut self, sid: &str, aid: &str, now: Instant) -> Option<Next> {
        if !self.window_open(sid, aid) {
            return None;
        }
        let max_deliver = self.max_deliver;
        loop {
            let did = self.inbox(sid, aid)?.queue.pop_front()?;
            let Some(d) = self.deliveries.get_mut(&did) else {
                continue;
            };
            if d.count >= max_deliver {
                let d = self.forget(did)?;
                return Some(Next::GiveUp(d));
            }
            d.count += 1;
            let first = d.count == 1;
            let (ack_mode, kind, timeout, count) = (d.ack_mode, d.kind, d.timeout_ms, d.count);
            if ack_mode == AckMode::None {
                let done = self.forget(did);
                return Some(Next::Send {
                    id: did,
                    first,
                    done,
                });
            }
            self.inbox(sid, aid)?.inflight.insert(did);
            if let (DeliveryKind::Message, Some(ms)) = (kind, timeout) {
                let deadline = now + Duration::from_millis(ms);
                self.timers.push(Reverse((deadline, did, count)));
            }
            return Some(Next::Send {
                id: did,
                first,
                done: None,
            });
        }
    }

    /// Agent `aid` acknowledged `ack_id` (a message id, or an action id of a group), sent by
    /// `sender` when the ack says so: the delivery is done and taken out. `None` when the agent
    /// has no delivery by that id. When several of its deliveries share the id (two senders
    /// chose the same envelope id), the ack settles exactly one: the one from `sender` if given,
    /// else the oldest in flight (the agent acks what it was sent, in order), else the oldest.
    pub fn handle_ack(
        &mut self,
        sid: &str,
        aid: &str,
        ack_id: &str,
        sender: Option<&str>,
    ) -> Option<Delivery> {
        let did = self.settled_by(sid, aid, ack_id, sender)?;
        self.forget(did)
    }

    /// Which delivery of agent `aid` an ack of `ack_id` (from `sender`'s message) settles.
    fn settled_by(&self, sid: &str, aid: &str, ack_id: &str, sender: Option<&str>) -> Option<u64> {
        let inbox = self.inboxes.get(sid)?.get(aid)?;
        let named = inbox.ack_ids.get(ack_id);
        if let [only] = named {
            return Some(*only);
        }
        let from_sender = |did: &&u64| {
            sender.is_some_and(|s| {
                self.deliveries
                    .get(did)
                    .is_some_and(|d| d.envelope.env.src == s)
            })
        };
        let candidates: Vec<u64> = match named.iter().filter(from_sender).count() {
            0 => named.to_vec(),
            _ => named.iter().filter(from_sender).copied().collect(),
        };
        candidates
            .iter()
            .find(|did| inbox.inflight.contains(did))
            .or(candidates.first())
            .copied()
    }

    /// Agent `aid` completed action `action_id` (a result for it, or a reply naming it): the
    /// action, and the actions before it in its group (clients take a group's actions in
    /// order), want nothing more. When none of the group's actions for the agent is left
    /// open, the group is acknowledged and comes back, taken out.
    pub fn complete_action(
        &mut self,
        sid: &str,
        aid: &str,
        action_id: &str,
        sender: Option<&str>,
    ) -> Option<Delivery> {
        let did = self.settled_by(sid, aid, action_id, sender)?;
        let d = self.deliveries.get_mut(&did)?;
        if d.kind != DeliveryKind::Action {
            return None;
        }
        if let Some(i) = d.open.iter().position(|a| a == action_id) {
            d.open.drain(..=i);
        }
        if d.open.is_empty() {
            self.forget(did)
        } else {
            None
        }
    }

    /// Agent `aid`'s connection went away: what was in flight goes back into its queue, in the
    /// original order, ahead of anything newer.
    pub fn handle_disconnect(&mut self, sid: &str, aid: &str) {
        let Some(inbox) = self.inbox(sid, aid) else {
            return;
        };
        if inbox.inflight.is_empty() {
            return;
        }
        let mut all: Vec<u64> = std::mem::take(&mut inbox.inflight).into_iter().collect();
        all.extend(inbox.queue.drain(..));
        all.sort_unstable();
        all.dedup();
        inbox.queue = all.into();
    }

    /// When [`Inboxes::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers
            .peek()
            .map(|Reverse((deadline, _, _))| *deadline)
    }

    /// Ack timeouts due at `now`: a message still unacked on the same delivery attempt goes
    /// back to the front of its agent's queue (to be sent again, as a redelivery). Returns the
    /// agents that have something to send again.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<(String, String)> {
        let mut woken = Vec::new();
        while let Some(Reverse((deadline, did, count))) = self.timers.peek().copied() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            let Some(d) = self.deliveries.get(&did) else {
                continue;
            };
            if d.count != count {
                continue;
            }
            let (sid, aid) = (d.session.clone(), d.target.clone());
            let Some(inbox) = self.inbox(&sid, &aid) else {
                continue;
            };
            if inbox.inflight.remove(&did) {
                inbox.queue.push_front(did);
                woken.push((sid, aid));
            }
        }
        woken
    }

    /// What was pending for agent `from` goes to agent `to` (the same agent under a new id),
    /// in its order, ahead of anything newer. Returns the ids moved.
    pub fn move_all(&mut self, sid: &str, from: &str, to: &str) -> Vec<u64> {
        let Some(inbox) = self.inboxes.get_mut(sid).and_then(|s| s.remove(from)) else {
            return Vec::new();
        };
        let mut moving: Vec<u64> = inbox.queue.into_iter().collect();
        moving.extend(inbox.inflight);
        moving.sort_unstable();
        for did in &moving {
            if let Some(mut d) = self.deliveries.remove(did) {
                self.budget.remove(&d); // counted again as it is queued anew
                d.addressed.get_or_insert_with(|| d.target.clone());
                d.target = to.to_owned();
                self.handle_send(d);
            }
        }
        if let Some(inbox) = self.inbox(sid, to) {
            inbox.queue.make_contiguous().sort_unstable();
        }
        moving
    }

    /// Takes delivery `did` out wherever it is (acked, given up, or its agent removed).
    pub fn forget(&mut self, did: u64) -> Option<Delivery> {
        let d = self.deliveries.remove(&did)?;
        self.budget.remove(&d);
        if let Some(inbox) = self.inbox(&d.session, &d.target) {
            // An acked delivery is in flight; only one never sent (dead-lettered, say) is
            // looked for in the queue, which can be long behind a slow consumer.
            if !inbox.inflight.remove(&did) {
                if let Some(pos) = inbox.queue.iter().position(|&q| q == did) {
                    inbox.queue.remove(pos);
                }
            }
            inbox.bytes -= d.size;
            inbox.ack_ids.remove(&d.envelope.env.id, did);
            for ack_id in d.action_ids() {
                inbox.ack_ids.remove(&ack_id, did);
            }
        }
        Some(d)
    }

    /// Agent `aid` is gone: its inbox (which the caller emptied) goes too.
    pub fn remove_agent(&mut self, sid: &str, aid: &str) {
        if let Some(s) = self.inboxes.get_mut(sid) {
            s.remove(aid);
        }
    }

    /// Agent `aid`'s pending deliveries (in flight and queued), in delivery order.
    pub fn pending(&self, sid: &str, aid: &str) -> Vec<u64> {
        let Some(inbox) = self.inboxes.get(sid).and_then(|s| s.get(aid)) else {
            return Vec::new();
        };
        let mut all: Vec<u64> = inbox.inflight.iter().chain(&inbox.queue).copied().collect();
        all.sort_unstable();
        all
    }

    /// (queued, in flight) for agent `aid`.
    pub fn counts(&self, sid: &str, aid: &str) -> (usize, usize) {
        self.inboxes
            .get(sid)
            .and_then(|s| s.get(aid))
            .map_or((0, 0), |i| (i.queue.len(), i.inflight.len()))
    }

    pub fn get(&self, did: u64) -> Option<&Delivery> {
        self.deliveries.get(&did)
    }

    /// Pending deliveries, all agents.
    pub fn len(&self) -> usize {
        self.deliveries.len()
    }

    /// The oldest record of session `sid` a pending delivery still needs.
    pub fn oldest_seq(&self, sid: &str) -> Option<u64> {
        self.deliveries
            .values()
            .filter(|d| d.session == sid)
            .map(|d| d.seq)
            .min()
    }
}
