//! One agent's ack ids: the id a `message.ack` names (the record's envelope id, or an action id
//! of a group) → the pending deliveries it may settle, oldest first.
//!
//! Envelope ids are chosen by senders, so two senders may pick the same one (by accident, or
//! by reading it from the history). Each delivery keeps its own entry: an ack settles exactly
//! one of them (see [`super::Inboxes::handle_ack`] for which), never the wrong one silently.

use super::super::state::Map;

#[derive(Debug, Default)]
pub(super) struct AckIds(Map<String, Slot>);

/// Almost always one delivery per id, without a second allocation.
#[derive(Debug)]
enum Slot {
    One(u64),
    Many(Vec<u64>),
}

impl AckIds {
    /// Delivery `did` may be settled by `ack_id` (ids grow: the newest goes last).
    pub fn insert(&mut self, ack_id: String, did: u64) {
        match self.0.get_mut(&ack_id) {
            None => {
                self.0.insert(ack_id, Slot::One(did));
            }
            Some(slot) => match slot {
                Slot::One(first) if *first == did => {}
                Slot::One(first) => *slot = Slot::Many(vec![*first, did]),
                Slot::Many(all) if all.contains(&did) => {}
                Slot::Many(all) => all.push(did),
            },
        }
    }

    /// The deliveries `ack_id` may settle, oldest first.
    pub fn get(&self, ack_id: &str) -> &[u64] {
        match self.0.get(ack_id) {
            None => &[],
            Some(Slot::One(did)) => std::slice::from_ref(did),
            Some(Slot::Many(all)) => all,
        }
    }

    /// Delivery `did` is no longer settled by `ack_id`.
    pub fn remove(&mut self, ack_id: &str, did: u64) {
        let Some(slot) = self.0.get_mut(ack_id) else {
            return;
        };
        match slot {
            Slot::One(one) if *one == did => {
                self.0.remove(ack_id);
            }
            Slot::One(_) => {}
            Slot::Many(all) => {
                all.retain(|&d| d != did);
                match all.as_slice() {
                    [] => {
                        self.0.remove(ack_id);
                    }
                    [last] => *slot = Slot::One(*last),
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_shared_by_two_deliveries_keeps_both_until_each_goes() {
        let mut ids = AckIds::default();
        ids.insert("m1".into(), 3);
        ids.insert("m1".into(), 7);
        ids.insert("m1".into(), 7);
        assert_eq!(ids.get("m1"), &[3, 7]);
        ids.remove("m1", 3);
        assert_eq!(ids.get("m1"), &[7]);
        ids.remove("m1", 3);
        assert_eq!(ids.get("m1"), &[7]);
        ids.remove("m1", 7);
        assert_eq!(ids.get("m1"), &[] as &[u64]);
        assert!(ids.0.is_empty());
    }
}
