//! Memory from the store: at start, and again after a failed commit (memory may believe what
//! the store never got).

use std::sync::Arc;
use std::time::Instant;

use codex_weave_runtime::Envelope;

use super::idempotency::Idempotency;
use super::inboxes::moved_delivery;
use super::recorded::Recorded;
use super::state::{Agent, Map, Session, Watcher};
use super::Engine;
use crate::conn::ConnId;
use crate::store::Loaded;

impl Engine {
    /// Rebuilds memory from what the store holds: sessions, agents (offline), queues in
    /// delivery order, idempotency keys.
    pub(super) fn restore(&mut self, loaded: Loaded) {
        self.registry.clear_sessions();
        self.inboxes.clear();
        self.records.unindexed.clear();
        for row in loaded.sessions {
            // The index catches up with every stored log at the first pause.
            self.records.unindexed.push(row.id.clone());
            self.registry.insert(Session {
                key: row.key,
                id: row.id,
                name: row.name,
                created_at: row.created_at,
                closed: row.closed,
                last_seq: row.last_seq,
                first_seq: row.first_seq,
                agents: Map::default(),
                names: Map::default(),
                watchers: Vec::new(),
                unindexed: true,
            });
        }
        for row in loaded.agents {
            let Some(session) = self.session_by_key_mut(row.session_key) else {
                continue;
            };
            if let Some(name) = &row.name {
                session.names.insert(name.to_lowercase(), row.id.clone());
            }
            session.agents.insert(row.id.clone(), {
                let mut a = Agent::new(row.id, row.name, row.kind);
                a.position = row.position;
                a.instance = row.instance;
                a.secret = row.secret;
                a
            });
        }
        let mut orphans = 0;
        for row in loaded.deliveries {
            let Some(sid) = self.registry.id_of(row.session_key).map(str::to_owned) else {
                orphans += 1;
                continue;
            };
            let Ok(envelope) = serde_json::from_str::<Envelope>(&row.envelope) else {
                orphans += 1;
                continue;
            };
            let exists = self.registry.sessions[&sid]
                .agents
                .contains_key(&row.target);
            if !exists {
                orphans += 1;
                continue;
            }
            let mut d = moved_delivery(
                row.id,
                sid,
                row.session_key,
                row.target,
                row.addressed,
                row.seq,
                Arc::new(Recorded::new(envelope)),
            );
            d.count = row.count;
            self.inboxes.handle_send(d);
        }
        if orphans > 0 {
            tracing::warn!(
                orphans,
                "stored deliveries without a session, agent or record skipped"
            );
        }
        self.inboxes.reserve_ids(loaded.next_delivery_id);
        self.records
            .continue_after(loaded.idempotency.last().map_or(0, |r| r.id));
        self.records.idem = Idempotency::load(loaded.idempotency);
    }

    /// After a failed commit: forget what memory believed and take the store's state again,
    /// keeping which connection serves which agent and who watches what.
    pub(super) fn reload_after_failure(&mut self) {
        self.batch.writes.clear();
        self.batch.receipt_rows.clear();
        self.batch.receipts.clear();
        let loaded = match self.read(|s| s.load()) {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::error!(error = %e, "store unreadable after a failed commit");
                return;
            }
        };
        let watchers: Vec<(String, Vec<Watcher>)> = self
            .registry
            .sessions
            .values_mut()
            .map(|s| (s.id.clone(), std::mem::take(&mut s.watchers)))
            .collect();
        self.restore(loaded);
        // The runtime took in the batch's requests too: take it back to what was committed.
        if let Err(e) = self.rebuild_runtime() {
            tracing::error!(error = %e, "runtime not rebuilt after a failed commit");
        }
        for (sid, w) in watchers {
            if let Some(s) = self.registry.sessions.get_mut(&sid) {
                s.watchers = w;
            }
        }
        let bound: Vec<(ConnId, String, String)> = self
            .registry
            .conns
            .iter()
            .flat_map(|(c, conn)| {
                conn.agents
                    .iter()
                    .map(move |(s, a)| (*c, s.clone(), a.clone()))
            })
            .collect();
        let mut held = Vec::new();
        for (conn, sid, aid) in bound {
            if let Some(agent) = self
                .registry
                .sessions
                .get_mut(&sid)
                .and_then(|s| s.agents.get_mut(&aid))
            {
                agent.conn = Some(conn);
                held.push((sid, aid));
            }
        }
        self.retry.hold(held, Instant::now());
        self.writer.recover();
    }
}
