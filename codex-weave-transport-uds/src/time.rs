//! Wall-clock helpers for the lines a process writes: RFC 3339 timestamps in UTC.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

thread_local! {
    /// The last second formatted on this thread and its `YYYY-MM-DDTHH:MM:SS` text: the bus
    /// stamps several envelopes per message, nearly all within the same second.
    static SECOND: Cell<(i64, [u8; 19])> = const { Cell::new((i64::MIN, [0; 19])) };
}

/// Now, as RFC 3339 with sub-second precision, e.g. `2026-11-22T10:00:00.123456Z`: the same text
/// as [`rfc3339`] (trailing zeros of the fraction trimmed), without reformatting the date each
/// time.
pub fn now_rfc3339() -> String {
    let Ok(since) = SystemTime::now().duration_since(UNIX_EPOCH) else {
        return rfc3339(OffsetDateTime::now_utc());
    };
    format_at(since.as_secs() as i64, since.subsec_nanos())
}

fn format_at(secs: i64, nanos: u32) -> String {
    let (cached, mut prefix) = SECOND.with(Cell::get);
    if cached != secs {
        let Ok(t) = OffsetDateTime::from_unix_timestamp(secs) else {
            return "1970-01-01T00:00:00Z".to_owned();
        };
        let full = rfc3339(t);
        let Some(head) = full.as_bytes().get(..19) else {
            return full;
        };
        prefix.copy_from_slice(head);
        SECOND.with(|c| c.set((secs, prefix)));
    }
    let mut out = String::with_capacity(30);
    out.push_str(std::str::from_utf8(&prefix).unwrap_or("1970-01-01T00:00:00"));
    if nanos != 0 {
        let mut digits = [b'0'; 9];
        let mut n = nanos;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        let end = digits.iter().rposition(|&d| d != b'0').map_or(0, |p| p + 1);
        out.push('.');
        out.push_str(std::str::from_utf8(&digits[..end]).unwrap_or_default());
    }
    out.push('Z');
    out
}

/// Formats a UTC time as RFC 3339.
pub fn rfc3339(t: OffsetDateTime) -> String {
    // Formatting a valid OffsetDateTime as RFC 3339 only fails for years outside 0..=9999.
    t.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_match_the_time_crate() {
        for (secs, nanos) in [
            (0, 0),
            (1_795_000_000, 1),
            (1_795_000_000, 120_000_000),
            (1_795_000_001, 999_999_999),
            (1_795_000_001, 5_000),
        ] {
            let t = OffsetDateTime::from_unix_timestamp(secs).unwrap()
                + time::Duration::nanoseconds(i64::from(nanos));
            assert_eq!(format_at(secs, nanos), rfc3339(t));
        }
    }

    #[test]
    fn now_matches_the_time_crate() {
        for _ in 0..1000 {
            let ours = now_rfc3339();
            let parsed = OffsetDateTime::parse(&ours, &Rfc3339).expect("parses");
            assert_eq!(rfc3339(parsed), ours);
        }
    }
}
