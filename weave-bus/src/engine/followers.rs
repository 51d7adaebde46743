//! Followers of a session's log (`events.stream`), bounded in bytes: the log is the buffer,
//! not memory.
//!
//! A follower is *live* while its connection keeps up: each record is queued for it as it is
//! written. Once its connection holds more than `max_stream_buffer` unwritten bytes, it falls
//! *behind*: it keeps only a cursor (the last record it was sent) and takes nothing more live.
//! When its connection drains (the writer reports `Writable`), it catches up from the store,
//! a page at a time while the connection has room, and turns live again at the head — with no
//! gap and no duplicate, since the engine does both in one step. A replay (the records after
//! `since` that a new stream asks for) is the same catch-up. A follower left so far behind
//! that the log was pruned past its cursor is cut off with an `events.cut` line (reason
//! `slow_consumer`, the cursor to resume from).

use codex_weave_runtime::{Envelope, ErrorCode};
use serde_json::json;

use super::records::stored_record_json;
use super::state::Watcher;
use super::{bus_envelope, Answer, Engine};
use crate::conn::ConnId;
use crate::refusal::Refusal;

/// Records read from the store per step of a catch-up.
const CATCH_UP_PAGE: usize = 500;

impl Engine {
    /// Starts a follower of `sid` on `conn` at cursor `since` (it gets the records after it):
    /// `follow` keeps it live after the replay; else it ends, with its `ok`, at today's head.
    pub(super) fn follow(&mut self, conn: ConnId, sid: &str, corr: &str, since: u64, follow: bool) {
        let (Some(s), Some(c)) = (
            self.registry.sessions.get_mut(sid),
            self.registry.conns.get_mut(&conn),
        ) else {
            return;
        };
        // A cursor older than what the log keeps starts at the oldest record kept (as a replay
        // always has); only a follower that falls behind later is cut off.
        let from = since.max(s.first_seq.saturating_sub(1));
        s.watchers.push(Watcher {
            conn,
            corr: corr.to_owned(),
            behind: Some(from),
            until: (!follow).then_some(s.last_seq),
            since,
        });
        if !c.watching.iter().any(|w| w == sid) {
            c.watching.push(sid.to_owned());
        }
        self.catch_up(sid, conn, corr);
    }

    /// The live followers of `sid` that take record `seq` now. One whose connection holds
    /// more than `max_stream_buffer` falls behind instead (it has the records through
    /// `seq - 1`) and will catch up once the connection drains.
    pub(super) fn live_followers(&mut self, sid: &str, seq: u64) -> Vec<(ConnId, String)> {
        let limit = self.cfg.limits.max_stream_buffer;
        let registry = &mut self.registry;
        let Some(session) = registry.sessions.get_mut(sid) else {
            return Vec::new();
        };
        let batch = &self.batch;
        let mut live = Vec::with_capacity(session.watchers.len());
        for w in session.watchers.iter_mut().filter(|w| w.behind.is_none()) {
            let Some(conn) = registry.conns.get(&w.conn) else {
                continue;
            };
            if conn.out.pending() + batch.bytes_for(w.conn) > limit {
                w.behind = Some(seq - 1);
                conn.out.mark_stalled();
                self.metrics.inc(&self.metrics.followers_paused);
                continue;
            }
            live.push((w.conn, w.corr.clone()));
        }
        live
    }

    /// `conn` drained: its followers that fell behind catch up.
    pub(super) fn catch_up_conn(&mut self, conn: ConnId) {
        let Some(c) = self.registry.conns.get(&conn) else {
            return;
        };
        let mut behind = Vec::new();
        for sid in &c.watching {
            let Some(s) = self.registry.sessions.get(sid) else {
                continue;
            };
            for w in s.watchers.iter().filter(|w| w.conn == conn) {
                if w.behind.is_some() {
                    behind.push((sid.clone(), w.corr.clone()));
                }
            }
        }
        for (sid, corr) in behind {
            self.catch_up(&sid, conn, &corr);
        }
    }

    /// Sends follower (`conn`, `corr`) of `sid` the records after its cursor, from the store,
    /// while its connection has room; at the head it turns live (or, without `follow`, ends).
    fn catch_up(&mut self, sid: &str, conn: ConnId, corr: &str) {
        let limit = self.cfg.limits.max_stream_buffer;
        loop {
            let Some((key, head, first, w)) = self.watcher(sid, conn, corr) else {
                return;
            };
            let Some(cursor) = w.behind else {
                return;
            };
            let end = w.until.unwrap_or(head);
            if cursor >= end {
                self.caught_up(sid, conn, corr);
                return;
            }
            if self.unreleased(conn) > limit {
                if let Some(c) = self.registry.conns.get(&conn) {
                    c.out.mark_stalled(); // the writer reports `Writable` once it drains
                }
                return;
            }
            if cursor + 1 < first {
                return self.cut(sid, conn, corr, cursor, first);
            }
            let page = CATCH_UP_PAGE.min((end - cursor) as usize);
            let rows = match self.read(move |s| s.records_after(key, cursor, page)) {
                Ok(rows) => rows,
                Err(e) => {
                    let refusal = Refusal::new(
                        ErrorCode::StoreUnavailable,
                        format!("reading the log failed: {e}"),
                    );
                    self.unfollow(sid, conn, corr);
                    return self.respond(conn, corr, Some(sid), Err(refusal));
                }
            };
            if rows.first().is_some_and(|r| r.seq > cursor + 1) {
                return self.cut(sid, conn, corr, cursor, rows[0].seq);
            }
            if rows.is_empty() {
                self.caught_up(sid, conn, corr); // nothing stored past the cursor
                return;
            }
            let mut through = cursor;
            for row in rows.iter().take_while(|r| r.seq <= end) {
                if self.unreleased(conn) > limit {
                    break; // the rest of the page is read again once the connection drains
                }
                let json = stored_record_json(row);
                self.send_record(conn, sid, corr, row.seq, &json);
                through = row.seq;
            }
            if let Some(w) = self.watcher_mut(sid, conn, corr) {
                w.behind = Some(through);
            }
        }
    }

    /// The follower reached its end: live from here, or (without `follow`) done, with its `ok`.
    fn caught_up(&mut self, sid: &str, conn: ConnId, corr: &str) {
        let Some(w) = self.watcher_mut(sid, conn, corr) else {
            return;
        };
        match w.until {
            None => w.behind = None,
            Some(head) => {
                let since = w.since;
                self.unfollow(sid, conn, corr);
                let ok = json!({ "since": since, "head": head, "follow": false });
                self.respond(conn, corr, Some(sid), Ok(Answer::payload(ok)));
            }
        }
    }

    /// The log no longer holds what the follower needs: it is told, and follows no more.
    fn cut(&mut self, sid: &str, conn: ConnId, corr: &str, cursor: u64, first: u64) {
        self.unfollow(sid, conn, corr);
        self.metrics.inc(&self.metrics.followers_cut);
        let mut notice: Envelope = bus_envelope("events.cut", Some(sid));
        notice.corr = Some(corr.to_owned());
        notice.payload = Some(json!({
            "reason": "slow_consumer",
            "since": cursor,
            "first_available": first,
            "message": "this stream fell behind the records the log keeps; follow again from `since` (the records before `first_available` are gone)",
        }));
        self.send(conn, &notice);
    }

    fn unfollow(&mut self, sid: &str, conn: ConnId, corr: &str) {
        if let Some(s) = self.registry.sessions.get_mut(sid) {
            s.watchers.retain(|w| !(w.conn == conn && w.corr == corr));
        }
    }

    /// (session key, head, first kept seq, the follower) of follower (`conn`, `corr`).
    fn watcher(&self, sid: &str, conn: ConnId, corr: &str) -> Option<(i64, u64, u64, Watcher)> {
        let s = self.registry.sessions.get(sid)?;
        let w = s
            .watchers
            .iter()
            .find(|w| w.conn == conn && w.corr == corr)?;
        Some((s.key, s.last_seq, s.first_seq, w.clone()))
    }

    fn watcher_mut(&mut self, sid: &str, conn: ConnId, corr: &str) -> Option<&mut Watcher> {
        let s = self.registry.sessions.get_mut(sid)?;
        s.watchers
            .iter_mut()
            .find(|w| w.conn == conn && w.corr == corr)
    }
}
