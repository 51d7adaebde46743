//! Full-text search over the event log: an SQLite FTS5 index beside `events`, contentless (the
//! text stays in the log; a row's id is `session << 40 | seq`). It is fed from the log itself —
//! `index_search` indexes the records after what `search_indexed` says is done — so it never
//! disagrees with the log for longer than until the next search or pause; it is pruned with the
//! log, and rebuilt from it at start-up if the index is missing.

use rusqlite::{params, OptionalExtension};

use super::db::{record_row, Store};
use crate::store::backend::{Search, SearchQuery, StoreResult, StoredRecord};

/// The text a record is found by: a message's text (or string payload), a result's detail, the
/// texts of a group's or relay's actions, a relay's summary.
const BODY: &str = "COALESCE(
    json_extract(envelope, '$.payload.text'),
    CASE WHEN json_type(envelope, '$.payload') = 'text' THEN json_extract(envelope, '$.payload') END,
    json_extract(envelope, '$.payload.detail'),
    (SELECT group_concat(json_extract(a.value, '$.text'), ' ')
       FROM json_each(envelope, '$.payload.actions') a
      WHERE json_type(envelope, '$.payload.actions') = 'array'),
    json_extract(envelope, '$.payload.done.summary'),
    json_extract(envelope, '$.payload.summary'))";

/// Bits of a search row id that hold the record's seq.
const SEQ_BITS: i64 = 40;

/// A user's words as an FTS5 query: each word quoted (so no word is taken for an operator),
/// all of them required; a word ending in `*` matches as a prefix.
pub fn match_expression(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split_whitespace()
        .filter_map(|w| {
            let (word, prefix) = match w.strip_suffix('*') {
                Some(stem) => (stem, true),
                None => (w, false),
            };
            let word = word.replace('"', "\"\"");
            (!word.is_empty()).then(|| format!("\"{word}\"{}", if prefix { "*" } else { "" }))
        })
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

impl Search for Store {
    /// Indexes the session's records not indexed yet, at most `max` of them; returns how many
    /// were looked at.
    fn index_search(&self, session: i64, max: u64) -> StoreResult<u64> {
        let through: i64 = self
            .conn
            .prepare_cached("SELECT through FROM search_indexed WHERE session = ?1")?
            .query_row([session], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let last: i64 = self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events WHERE session = ?1")?
            .query_row([session], |r| r.get(0))?;
        if last <= through {
            return Ok(0);
        }
        let last = last.min(through.saturating_add(max.min(i64::MAX as u64) as i64));
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO events_fts (rowid, body)
                 SELECT id, body FROM (
                   SELECT (session << {SEQ_BITS}) | seq AS id, {BODY} AS body
                   FROM events WHERE session = ?1 AND seq > ?2 AND seq <= ?3)
                 WHERE body IS NOT NULL AND body != ''"
            ))?
            .execute(params![session, through, last])?;
        self.conn
            .prepare_cached(
                "INSERT INTO search_indexed (session, through) VALUES (?1, ?2)
                 ON CONFLICT (session) DO UPDATE SET through = excluded.through",
            )?
            .execute(params![session, last])?;
        Ok((last - through) as u64)
    }

    /// Records matching `q`, newest first, at most `q.limit`. The index is brought up to date
    /// first.
    fn search(&self, session: i64, q: &SearchQuery) -> StoreResult<Vec<StoredRecord>> {
        self.index_search(session, u64::MAX)?;
        let filters = "(?3 IS NULL OR json_extract(e.envelope, '$.src') = ?3
                 OR lower(json_extract(e.envelope, '$.meta.weave.origin_src_name')) = lower(?3))
             AND (?4 IS NULL OR e.ts >= ?4) AND (?5 IS NULL OR e.ts < ?5)
             AND (?6 IS NULL OR e.seq < ?6)";
        let lo = session << SEQ_BITS;
        let hi = lo | ((1 << SEQ_BITS) - 1);
        let args = params![
            session,
            q.text.as_deref().and_then(match_expression),
            q.from,
            q.since,
            q.until,
            q.before.map(|b| b as i64),
            q.limit as i64,
            lo,
            hi
        ];
        let sql = if q.text.as_deref().and_then(match_expression).is_some() {
            format!(
                "SELECT e.seq, e.ts, e.envelope FROM events_fts f
                 JOIN events e ON e.session = ?1 AND e.seq = (f.rowid & {mask})
                 WHERE events_fts MATCH ?2 AND f.rowid BETWEEN ?8 AND ?9 AND {filters}
                 ORDER BY f.rowid DESC LIMIT ?7",
                mask = (1i64 << SEQ_BITS) - 1
            )
        } else {
            format!(
                "SELECT e.seq, e.ts, e.envelope FROM events e
                 WHERE e.session = ?1 AND {filters}
                   -- the same parameters as the text search: ?2, ?8, ?9 unused
                   AND (?2 IS NULL OR ?8 <= ?9)
                 ORDER BY e.seq DESC LIMIT ?7"
            )
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(args, record_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

impl Store {
    /// Drops the session's indexed records with `seq <= through` (retention).
    pub(super) fn prune_search(&self, session: i64, through: u64) -> StoreResult<()> {
        let lo = session << SEQ_BITS;
        self.conn
            .prepare_cached("DELETE FROM events_fts WHERE rowid BETWEEN ?1 AND ?2")?
            .execute(params![lo, lo | through as i64])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Durability;
    use crate::store::prelude::*;
    use rusqlite::Connection;

    fn store_with(texts: &[(&str, &str, &str)]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db"), Durability::Normal).unwrap();
        store
            .insert_session(1, "s", None, "2026-01-01T00:00:00Z")
            .unwrap();
        {
            let mut rows = store.rows().unwrap();
            for (i, (src, ts, payload)) in texts.iter().enumerate() {
                let env = format!(
                    r#"{{"v":1,"type":"message.send","id":"m{i}","ts":"{ts}","src":"{src}","payload":{payload},"meta":{{"weave":{{"origin_src_name":"{}"}}}}}}"#,
                    src.to_uppercase()
                );
                rows.insert_event(1, i as u64 + 1, ts, &env).unwrap();
            }
        }
        (dir, store)
    }

    fn seqs(rows: &[StoredRecord]) -> Vec<u64> {
        rows.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn words_are_found_newest_first_by_sender_time_and_page() {
        let (_d, store) = store_with(&[
            (
                "ann",
                "2026-01-01T00:00:01Z",
                r#"{"text":"the build is green"}"#,
            ),
            ("bob", "2026-01-01T00:00:02Z", r#""the build is red""#),
            (
                "ann",
                "2026-01-01T00:00:03Z",
                r#"{"text":"Crème brûlée, \"build\" OR not"}"#,
            ),
            (
                "bob",
                "2026-01-01T00:00:04Z",
                r#"{"actions":[{"text":"review the build"},{"type":"control"}]}"#,
            ),
            ("ann", "2026-01-01T00:00:05Z", r#"{"text":"lunch"}"#),
        ]);
        let q = |text: &str| SearchQuery {
            text: Some(text.into()),
            limit: 10,
            ..SearchQuery::default()
        };
        assert_eq!(seqs(&store.search(1, &q("build")).unwrap()), [4, 3, 2, 1]);
        assert_eq!(seqs(&store.search(1, &q("BUILD green")).unwrap()), [1]);
        assert_eq!(
            seqs(&store.search(1, &q("creme")).unwrap()),
            [3],
            "diacritics folded"
        );
        assert_eq!(
            seqs(&store.search(1, &q("OR \"")).unwrap()),
            [3],
            "operators are words"
        );
        assert_eq!(seqs(&store.search(1, &q("bui*")).unwrap()), [4, 3, 2, 1]);
        let by_bob = SearchQuery {
            from: Some("Bob".into()),
            ..q("build")
        };
        assert_eq!(seqs(&store.search(1, &by_bob).unwrap()), [4, 2]);
        let window = SearchQuery {
            since: Some("2026-01-01T00:00:02Z".into()),
            until: Some("2026-01-01T00:00:04Z".into()),
            ..q("build")
        };
        assert_eq!(seqs(&store.search(1, &window).unwrap()), [3, 2]);
        let page = SearchQuery {
            before: Some(3),
            limit: 1,
            ..q("build")
        };
        assert_eq!(seqs(&store.search(1, &page).unwrap()), [2]);
        let everything = SearchQuery {
            from: Some("ann".into()),
            limit: 10,
            ..SearchQuery::default()
        };
        assert_eq!(seqs(&store.search(1, &everything).unwrap()), [5, 3, 1]);
        // Pruned with the log.
        store.prune_events(1, 2).unwrap();
        assert_eq!(seqs(&store.search(1, &q("build")).unwrap()), [4, 3]);
    }

    #[test]
    fn a_missing_index_is_rebuilt_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let (_d, store) = store_with(&[(
                "ann",
                "2026-01-01T00:00:01Z",
                r#"{"text":"kept in the log"}"#,
            )]);
            drop(store);
            std::fs::copy(_d.path().join("s.db"), &path).unwrap();
        }
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("DROP TABLE events_fts").unwrap();
        drop(conn);
        let store = Store::open(&path, Durability::Normal).unwrap();
        let q = SearchQuery {
            text: Some("kept".into()),
            limit: 5,
            ..SearchQuery::default()
        };
        assert_eq!(seqs(&store.search(1, &q).unwrap()), [1]);
    }

    #[test]
    fn nothing_to_search_for_is_no_match_expression() {
        assert_eq!(match_expression(" * "), None);
        assert_eq!(match_expression("   "), None);
        assert_eq!(match_expression("a b*"), Some("\"a\" \"b\"*".into()));
    }
}
