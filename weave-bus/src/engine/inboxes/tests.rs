//! The delivery rules on a fake clock: time is an `Instant` the test moves forward, so ack
//! timeouts, redelivery and the `max_deliver` cap are checked exactly, without sleeping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use codex_weave_runtime::{Ack, AckMode, Envelope};
use serde_json::json;

use super::*;
use crate::engine::recorded::Recorded;

const S: &str = "s1";

/// A fake clock: a fixed start and how far the test has moved it.
struct Clock(Instant, Duration);

impl Clock {
    fn new() -> Self {
        Clock(Instant::now(), Duration::ZERO)
    }
    fn now(&self) -> Instant {
        self.0 + self.1
    }
    fn advance(&mut self, ms: u64) {
        self.1 += Duration::from_millis(ms);
    }
}

fn message(inboxes: &mut Inboxes, to: &str, id: &str, ack: Option<(AckMode, Option<u64>)>) -> u64 {
    message_from(inboxes, "a1", to, id, ack)
}

fn message_from(
    inboxes: &mut Inboxes,
    from: &str,
    to: &str,
    id: &str,
    ack: Option<(AckMode, Option<u64>)>,
) -> u64 {
    let mut env = Envelope::new("message.send", id.to_owned(), String::new(), from);
    env.ack = ack.map(|(mode, timeout_ms)| Ack {
        mode: Some(mode),
        timeout_ms,
    });
    let did = inboxes.next_id();
    let seq = did;
    let d = new_delivery(
        did,
        S.into(),
        1,
        to.into(),
        seq,
        Arc::new(Recorded::new(env)),
    );
    inboxes.handle_send(d);
    did
}

fn group(inboxes: &mut Inboxes, to: &str, actions: &[(&str, bool)]) -> u64 {
    let mut env = Envelope::new("action.submit", "g1".into(), String::new(), "a1");
    let actions: Vec<_> = actions
        .iter()
        .map(|(id, wants)| {
            let mut a = json!({ "type": "message", "dst": to, "action_id": id, "text": "x" });
            if !wants {
                a["reply_policy"] = json!("none");
            }
            a
        })
        .collect();
    env.payload = Some(json!({ "actions": actions }));
    let did = inboxes.next_id();
    let d = new_delivery(
        did,
        S.into(),
        1,
        to.into(),
        did,
        Arc::new(Recorded::new(env)),
    );
    inboxes.handle_send(d);
    did
}

/// What `next_for` yields for `aid` until it yields nothing: (delivery id, first attempt) for
/// each send, or `(id, false)` negated as `GiveUp`.
fn drain(inboxes: &mut Inboxes, aid: &str, now: Instant) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(next) = inboxes.next_for(S, aid, now) {
        out.push(match next {
            Next::Send { id, first, .. } => {
                format!("send {id}{}", if first { "" } else { " again" })
            }
            Next::GiveUp(d) => format!("give up {} after {}", d.id, d.count),
        });
    }
    out
}

#[test]
fn an_unacked_message_is_sent_again_when_its_timeout_passes_then_given_up_at_max_deliver() {
    let mut clock = Clock::new();
    let mut inboxes = Inboxes::new(16, 3);
    let m = message(&mut inboxes, "b1", "m1", Some((AckMode::Manual, Some(100))));
    assert_eq!(drain(&mut inboxes, "b1", clock.now()), ["send 1"]);
    assert_eq!(
        inboxes.poll_timeout(),
        Some(clock.now() + Duration::from_millis(100))
    );

    clock.advance(99);
    assert!(
        inboxes.handle_timeout(clock.now()).is_empty(),
        "not due yet"
    );
    assert!(drain(&mut inboxes, "b1", clock.now()).is_empty());

    clock.advance(1);
    assert_eq!(
        inboxes.handle_timeout(clock.now()),
        [(S.to_owned(), "b1".to_owned())]
    );
    assert_eq!(drain(&mut inboxes, "b1", clock.now()), ["send 1 again"]);
    clock.advance(100);
    inboxes.handle_timeout(clock.now());
    assert_eq!(drain(&mut inboxes, "b1", clock.now()), ["send 1 again"]);
    assert_eq!(inboxes.get(m).map(|d| d.count), Some(3));
    clock.advance(100);
    inboxes.handle_timeout(clock.now());
    assert_eq!(
        drain(&mut inboxes, "b1", clock.now()),
        ["give up 1 after 3"]
    );
    assert_eq!(inboxes.len(), 0);
    assert_eq!(inboxes.counts(S, "b1"), (0, 0));
}

#[test]
fn an_acked_message_is_not_sent_again_when_its_timeout_passes() {
    let mut clock = Clock::new();
    let mut inboxes = Inboxes::new(16, 5);
    message(&mut inboxes, "b1", "m1", Some((AckMode::Manual, Some(100))));
    drain(&mut inboxes, "b1", clock.now());
    assert_eq!(
        inboxes.handle_ack(S, "b1", "m1", None).map(|d| d.id),
        Some(1)
    );
    clock.advance(1_000);
    assert!(inboxes.handle_timeout(clock.now()).is_empty());
    assert!(drain(&mut inboxes, "b1", clock.now()).is_empty());
    assert_eq!(inboxes.poll_timeout(), None, "the spent timer is gone");
}

#[test]
fn a_timer_armed_for_an_earlier_attempt_does_not_fire_for_a_later_one() {
    let mut clock = Clock::new();
    let mut inboxes = Inboxes::new(16, 5);
    message(&mut inboxes, "b1", "m1", Some((AckMode::Manual, Some(100))));
    drain(&mut inboxes, "b1", clock.now());
    // The connection drops at 50 ms and the agent is back at once: attempt 2, due at 150 ms.
    clock.advance(50);
    inboxes.handle_disconnect(S, "b1");
    assert_eq!(drain(&mut inboxes, "b1", clock.now()), ["send 1 again"]);
    clock.advance(50);
    assert!(
        inboxes.handle_timeout(clock.now()).is_empty(),
        "attempt 1's timer is stale"
    );
    clock.advance(50);
    assert_eq!(inboxes.handle_timeout(clock.now()).len(), 1);
}

#[test]
fn a_message_that_wants_no_ack_is_done_once_sent_and_never_sent_again() {
    let clock = Clock::new();
    let mut inboxes = Inboxes::new(16, 5);
    message(&mut inboxes, "b1", "m1", Some((AckMode::None, None)));
    match inboxes.next_for(S, "b1", clock.now()) {
        Some(Next::Send {
            id: 1,
            first: true,
            done: Some(d),
        }) => assert_eq!(d.envelope.env.id, "m1"),
        other => panic!("expected the delivery, done: {other:?}"),
    }
    inboxes.handle_disconnect(S, "b1");
    assert!(drain(&mut inboxes, "b1", clock.now()).is_empty());
    assert_eq!(inboxes.len(), 0);
}

#[test]
fn a_disconnect_puts_what_was_in_flight_back_first_in_delivery_order() {
    let now = Clock::new().now();
    let mut inboxes = Inboxes::new(3, 5);
    for i in 1..=5 {
        message(
            &mut inboxes,
            "b1",
            &format!("m{i}"),
            Some((AckMode::Manual, None)),
        );
    }
    // The window holds 3: m1..m3 go out, m4 and m5 wait.
    assert_eq!(
        drain(&mut inboxes, "b1", now),
        ["send 1", "send 2", "send 3"]
    );
    assert_eq!(inboxes.counts(S, "b1"), (2, 3));
    inboxes.handle_ack(S, "b1", "m2", None);
    assert_eq!(drain(&mut inboxes, "b1", now), ["send 4"]);
    inboxes.handle_disconnect(S, "b1");
    assert_eq!(inboxes.pending(S, "b1"), [1, 3, 4, 5]);
    assert_eq!(
        drain(&mut inboxes, "b1", now),
        ["send 1 again", "send 3 again", "send 4 again"]
    );
}

#[test]
fn a_group_is_done_when_each_action_that_wants_an_answer_is_completed() {
    let now = Clock::new().now();
    let mut inboxes = Inboxes::new(16, 5);
    group(
        &mut inboxes,
        "w1",
        &[("a1", true), ("a2", true), ("a3", false)],
    );
    drain(&mut inboxes, "w1", now);
    assert!(
        inboxes.complete_action(S, "w1", "a1", None).is_none(),
        "a2 is still open"
    );
    // Completing a2 completes what comes before it; a3 wants no answer.
    assert_eq!(
        inboxes.complete_action(S, "w1", "a2", None).map(|d| d.id),
        Some(1)
    );
    assert_eq!(inboxes.len(), 0);
    // A group whose every action wants no answer is done once sent.
    group(&mut inboxes, "w1", &[("r1", false)]);
    assert!(matches!(
        inboxes.next_for(S, "w1", now),
        Some(Next::Send { done: Some(_), .. })
    ));
    assert_eq!(inboxes.len(), 0);
}

#[test]
fn moved_deliveries_keep_their_order_ahead_of_the_new_agents_own() {
    let now = Clock::new().now();
    let mut inboxes = Inboxes::new(16, 5);
    message(&mut inboxes, "old", "m1", Some((AckMode::Manual, None)));
    message(&mut inboxes, "old", "m2", Some((AckMode::Manual, None)));
    drain(&mut inboxes, "old", now); // m1 and m2 in flight on the old agent
    message(&mut inboxes, "new", "m3", Some((AckMode::Manual, None)));
    assert_eq!(inboxes.move_all(S, "old", "new"), [1, 2]);
    assert_eq!(inboxes.counts(S, "old"), (0, 0));
    assert_eq!(
        drain(&mut inboxes, "new", now),
        ["send 1 again", "send 2 again", "send 3"]
    );
    assert_eq!(
        inboxes.get(1).and_then(|d| d.addressed.clone()).as_deref(),
        Some("old")
    );
    assert!(
        inboxes.handle_ack(S, "new", "m1", None).is_some(),
        "acked by the new id"
    );
}

#[test]
fn two_senders_with_one_envelope_id_are_each_settled_by_one_ack() {
    let mut clock = Clock::new();
    let mut inboxes = Inboxes::new(16, 3);
    let timed = Some((AckMode::Manual, Some(100)));
    let first = message_from(&mut inboxes, "a1", "b1", "same", timed);
    let second = message_from(&mut inboxes, "a2", "b1", "same", timed);
    assert_eq!(drain(&mut inboxes, "b1", clock.now()), ["send 1", "send 2"]);
    // The receiver acks each delivery it got, naming only the id (an unchanged client).
    assert_eq!(
        inboxes.handle_ack(S, "b1", "same", None).map(|d| d.id),
        Some(first)
    );
    assert_eq!(
        inboxes.handle_ack(S, "b1", "same", None).map(|d| d.id),
        Some(second)
    );
    assert!(
        inboxes.handle_ack(S, "b1", "same", None).is_none(),
        "nothing left"
    );
    clock.advance(1_000);
    assert!(
        inboxes.handle_timeout(clock.now()).is_empty(),
        "neither is sent again"
    );
    assert_eq!(inboxes.len(), 0);
}

#[test]
fn an_ack_naming_the_sender_settles_that_senders_delivery() {
    let now = Clock::new().now();
    let mut inboxes = Inboxes::new(16, 3);
    message_from(&mut inboxes, "a1", "b1", "same", None);
    let second = message_from(&mut inboxes, "a2", "b1", "same", None);
    drain(&mut inboxes, "b1", now);
    let got = inboxes.handle_ack(S, "b1", "same", Some("a2"));
    assert_eq!(got.map(|d| d.id), Some(second));
    assert_eq!(inboxes.get(second).map(|d| d.id), None);
    assert_eq!(inboxes.counts(S, "b1"), (0, 1), "a1's is still in flight");
}

#[test]
fn an_ack_settles_what_was_sent_before_what_is_still_queued() {
    let now = Clock::new().now();
    let mut inboxes = Inboxes::new(1, 3);
    let first = message_from(&mut inboxes, "a1", "b1", "same", None);
    message_from(&mut inboxes, "a2", "b1", "same", None);
    assert_eq!(
        drain(&mut inboxes, "b1", now),
        ["send 1"],
        "a window of one"
    );
    let got = inboxes.handle_ack(S, "b1", "same", None);
    assert_eq!(got.map(|d| d.id), Some(first), "the one in flight");
    assert_eq!(drain(&mut inboxes, "b1", now), ["send 2"]);
}
