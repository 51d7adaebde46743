//! Receipts: how far a message got with one recipient. A state only ever moves forward:
//! `queued` (accepted for the agent) → `delivered` (written to a live connection of the agent) →
//! `read` (the agent itself took it: an inbox read, a hook showing it, a manual ack) →
//! `answered` (a reply or a terminal result refers to it).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptState {
    Queued,
    Delivered,
    Read,
    Answered,
}

impl ReceiptState {
    pub const ALL: [ReceiptState; 4] = [
        ReceiptState::Queued,
        ReceiptState::Delivered,
        ReceiptState::Read,
        ReceiptState::Answered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptState::Queued => "queued",
            ReceiptState::Delivered => "delivered",
            ReceiptState::Read => "read",
            ReceiptState::Answered => "answered",
        }
    }

    /// The number the store keeps (the order of the states).
    pub fn code(self) -> i64 {
        self as i64
    }

    pub fn from_code(code: i64) -> Option<ReceiptState> {
        Self::ALL.get(usize::try_from(code).ok()?).copied()
    }

    pub fn parse(s: &str) -> Option<ReceiptState> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for ReceiptState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_codes_and_names_in_order() {
        for (i, s) in ReceiptState::ALL.into_iter().enumerate() {
            assert_eq!(s.code(), i as i64);
            assert_eq!(ReceiptState::from_code(s.code()), Some(s));
            assert_eq!(ReceiptState::parse(s.as_str()), Some(s));
        }
        assert!(ReceiptState::Queued < ReceiptState::Answered);
        assert_eq!(ReceiptState::from_code(4), None);
        assert_eq!(ReceiptState::from_code(-1), None);
    }
}
