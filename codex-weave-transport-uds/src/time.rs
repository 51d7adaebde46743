//! Wall-clock helpers for the lines a process writes: RFC 3339 timestamps in UTC.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Now, as RFC 3339 with sub-second precision, e.g. `2026-11-22T10:00:00.123456Z`.
pub fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

/// Formats a UTC time as RFC 3339.
pub fn rfc3339(t: OffsetDateTime) -> String {
    // Formatting a valid OffsetDateTime as RFC 3339 only fails for years outside 0..=9999.
    t.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}
