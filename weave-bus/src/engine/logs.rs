//! Housekeeping of the sessions' logs at pauses: the search index catches up, and logs past
//! `retain_events` are pruned (never below what a pending delivery still needs).

use super::{Engine, INDEX_STEP};

impl Engine {
    /// At a pause in the traffic the search index takes in what was written since, at most
    /// [`INDEX_STEP`] records a session per pause (a long backlog is taken in over several).
    pub(super) fn index_quietly(&mut self) {
        for sid in std::mem::take(&mut self.records.unindexed) {
            let Some(session) = self.registry.sessions.get_mut(&sid) else {
                continue;
            };
            session.unindexed = false;
            let key = session.key;
            self.write(move |s| s.index_search(key, INDEX_STEP).map(|_| ()));
        }
    }

    /// Retention: drops each marked session's records older than the last `retain_events`,
    /// but never one a pending delivery still needs.
    pub(super) fn prune_logs(&mut self) {
        let mut marked = std::mem::take(&mut self.batch.prune);
        marked.sort();
        marked.dedup();
        for sid in marked {
            let Some(session) = self.registry.sessions.get(&sid) else {
                continue;
            };
            let (key, first, last) = (session.key, session.first_seq, session.last_seq);
            let oldest_needed = self.inboxes.oldest_seq(&sid);
            let mut through = last.saturating_sub(self.cfg.limits.retain_events);
            if let Some(needed) = oldest_needed {
                through = through.min(needed.saturating_sub(1));
            }
            if through < first {
                continue;
            }
            self.write(move |s| s.prune_events(key, through));
            if let Some(s) = self.registry.sessions.get_mut(&sid) {
                s.first_seq = through + 1;
            }
            tracing::debug!(session = %sid, through, "pruned the log");
        }
    }
}
