//! Sessions and agents over the real socket: create, list, get, close; add, rename, remove;
//! names unique case-insensitively; one connection per agent.

use serde_json::{json, Value};
use weave_test_kit::*;

fn ids(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn session_lifecycle_create_list_get_close() {
    let bus = BusProcess::start();
    let c = bus.connect().await;
    let a = c.create_session("alpha").await;
    let b = c.create_session("beta").await;
    let list = c
        .ok("session.list", None, "t", Value::Null)
        .await
        .payload
        .unwrap();
    assert_eq!(ids(&list, "sessions"), vec![a.clone(), b.clone()]);
    assert_eq!(list["sessions"][0]["name"], "alpha");

    let got = c
        .ok("session.get", Some(&a), "t", Value::Null)
        .await
        .payload
        .unwrap();
    assert_eq!(got["session"]["status"], "open");

    c.ok("session.close", Some(&a), "t", Value::Null).await;
    let list = c
        .ok("session.list", None, "t", Value::Null)
        .await
        .payload
        .unwrap();
    assert_eq!(ids(&list, "sessions"), vec![b.clone()]);
    let all = c
        .ok("session.list", None, "t", json!({ "include_closed": true }))
        .await
        .payload
        .unwrap();
    assert_eq!(ids(&all, "sessions"), vec![a.clone(), b]);
    assert_eq!(
        c.err("agent.add", Some(&a), "x", json!({ "id": "x" }))
            .await,
        "session_closed"
    );
    assert_eq!(
        c.err("session.close", Some(&a), "t", Value::Null).await,
        "session_closed"
    );
}

#[tokio::test]
async fn agents_join_rename_and_leave() {
    let bus = BusProcess::start();
    let admin = bus.connect().await;
    let s = admin.create_session("team").await;
    let mut alice = bus.connect().await;
    let bob = bus.connect().await;
    alice.add_agent(&s, "a1", "Alice").await;
    bob.add_agent(&s, "b1", "Bob").await;

    // Names are unique per session, compared case-insensitively.
    let carol = bus.connect().await;
    assert_eq!(
        carol
            .err(
                "agent.add",
                Some(&s),
                "c1",
                json!({ "id": "c1", "name": "ALICE" })
            )
            .await,
        "name_taken"
    );

    // Renaming: only yourself, non-empty, not taken; others see agent.updated.
    bob.ok(
        "agent.update",
        Some(&s),
        "b1",
        json!({ "id": "b1", "name": "Robert" }),
    )
    .await;
    let updated = alice.next_of("agent.updated").await;
    assert_eq!(updated.src, "weave");
    assert_eq!(updated.session.as_deref(), Some(s.as_str()));
    assert_eq!(updated.payload.as_ref().unwrap()["name"], "Robert");
    assert_eq!(
        bob.err(
            "agent.update",
            Some(&s),
            "b1",
            json!({ "id": "a1", "name": "X" })
        )
        .await,
        "forbidden"
    );
    assert_eq!(
        bob.err(
            "agent.update",
            Some(&s),
            "b1",
            json!({ "id": "b1", "name": "  " })
        )
        .await,
        "bad_request"
    );
    assert_eq!(
        bob.err(
            "agent.update",
            Some(&s),
            "b1",
            json!({ "id": "b1", "name": "alice" })
        )
        .await,
        "name_taken"
    );

    let list = admin
        .ok("agent.list", Some(&s), "t", Value::Null)
        .await
        .payload
        .unwrap();
    assert_eq!(ids(&list, "agents"), vec!["a1", "b1"]);
    assert_eq!(list["agents"][1]["name"], "Robert");

    // A disconnect leaves the agent registered and offline.
    drop(bob);
    admin.wait_status(&s, "b1", "offline").await;
    let list = admin
        .ok("agent.list", Some(&s), "t", Value::Null)
        .await
        .payload
        .unwrap();
    assert_eq!(ids(&list, "agents"), vec!["a1", "b1"]);

    // agent.remove takes it off the list; later sends to it are unknown_agent.
    alice
        .ok("agent.remove", Some(&s), "a1", json!({ "id": "a1" }))
        .await;
    let list = admin
        .ok("agent.list", Some(&s), "t", Value::Null)
        .await
        .payload
        .unwrap();
    assert_eq!(ids(&list, "agents"), vec!["b1"]);
    let carol_join = carol.add_agent(&s, "c1", "Carol").await;
    assert_eq!(carol_join.error, None);
    let refused = carol.call(message(&s, "c1", "a1", "hello?")).await;
    assert_eq!(refused.error.unwrap().code, "unknown_agent");
}

#[tokio::test]
async fn acting_as_an_agent_requires_the_connection_that_added_it() {
    let bus = BusProcess::start();
    let owner = bus.connect().await;
    let s = owner.create_session("s").await;
    owner.add_agent(&s, "a1", "Alice").await;
    owner.add_agent(&s, "b1", "Bob").await;
    let intruder = bus.connect().await;
    assert_eq!(
        intruder
            .call(message(&s, "a1", "b1", "spoof"))
            .await
            .error
            .unwrap()
            .code,
        "forbidden"
    );
    let mut submit = envelope(
        "action.submit",
        Some(&s),
        "a1",
        json!({
            "group_id": "g", "actions": [{ "type": "message", "dst": "b1", "action_id": "x", "action_index": 0, "text": "t", "kind": "user" }]
        }),
    );
    submit.idempotency_key = Some("g".into());
    assert_eq!(intruder.call(submit).await.error.unwrap().code, "forbidden");
    let mut result = envelope(
        "action.result",
        Some(&s),
        "a1",
        json!({ "group_id": "g", "action_id": "x", "action_index": 0, "status": "completed" }),
    );
    result.dst = Some("b1".into());
    assert_eq!(intruder.call(result).await.error.unwrap().code, "forbidden");
    assert_eq!(
        intruder
            .err(
                "agent.update",
                Some(&s),
                "a1",
                json!({ "id": "a1", "name": "Mallory" })
            )
            .await,
        "forbidden"
    );
    assert_eq!(
        intruder
            .err("agent.remove", Some(&s), "a1", json!({ "id": "a1" }))
            .await,
        "forbidden"
    );
    assert_eq!(
        intruder
            .call(message(&s, "ghost", "b1", "hi"))
            .await
            .error
            .unwrap()
            .code,
        "unknown_agent"
    );
    // Reads may use any src.
    intruder.ok("agent.list", Some(&s), "a1", Value::Null).await;
    intruder
        .ok("events.history", Some(&s), "a1", Value::Null)
        .await;
}

/// An agent id belongs to the connection that holds it: another connection takes it over only
/// with proof (the secret the registering add was told, or the holder's instance key), else
/// `agent_busy` and nothing moves. A holder that is gone (a crash) is replaced without proof.
#[tokio::test]
async fn a_live_agent_is_taken_over_only_with_its_secret_or_instance() {
    let bus = BusProcess::start();
    let admin = bus.connect().await;
    let s = admin.create_session("s").await;
    admin.add_agent(&s, "a1", "Alice").await;
    let mut old = bus.connect().await;
    let added = old.add_agent(&s, "w1", "Worker").await.payload.unwrap();
    let secret = added["secret"]
        .as_str()
        .expect("the registering add is told the secret");
    assert_eq!(secret.len(), 32);

    let intruder = bus.connect().await;
    let add = |payload: Value| envelope("agent.add", Some(&s), "w1", payload);
    let refused = intruder
        .call(add(json!({ "id": "w1", "name": "Worker" })))
        .await;
    assert_eq!(refused.error.unwrap().code, "agent_busy");
    let wrong = intruder
        .call(add(json!({ "id": "w1", "secret": "0".repeat(32) })))
        .await;
    assert_eq!(wrong.error.unwrap().code, "agent_busy");
    admin.send(&s, "a1", "Worker", "still the old one's").await;
    let got = old.next_of("message.send").await;
    assert_eq!(text_of(&got), "still the old one's");
    old.ack(&s, "w1", &got);
    old.ok("agent.list", Some(&s), "w1", Value::Null).await; // the ack is applied

    // With the secret: the old connection is displaced.
    let mut new = bus.connect().await;
    let taken = new.call(add(json!({ "id": "w1", "secret": secret }))).await;
    assert_eq!(taken.error, None, "{taken:?}");
    assert_eq!(
        taken.payload.unwrap()["secret"],
        secret,
        "echoed to who proved it"
    );
    let notice = old.next_of("agent.displaced").await;
    assert_eq!(notice.src, "weave");
    assert_eq!(notice.session.as_deref(), Some(s.as_str()));
    admin.send(&s, "a1", "Worker", "for the new one").await;
    assert_eq!(
        text_of(&new.next_of("message.send").await),
        "for the new one"
    );
    old.none_of("message.send", std::time::Duration::from_millis(200))
        .await;
    assert_eq!(
        old.call(message(&s, "w1", "a1", "stale"))
            .await
            .error
            .unwrap()
            .code,
        "forbidden"
    );

    // The same client instance proves it too.
    let (mut first, second) = (bus.connect().await, bus.connect().await);
    let with_instance = |id: &str| {
        envelope(
            "agent.add",
            Some(&s),
            id,
            json!({ "id": id, "instance": "host:/src/app" }),
        )
    };
    let told = first.call(with_instance("w2")).await.payload.unwrap();
    assert!(told["secret"].is_string());
    assert_eq!(second.call(with_instance("w2")).await.error, None);
    first.next_of("agent.displaced").await;
    let no_secret = second.call(with_instance("w2")).await.payload.unwrap();
    assert_eq!(
        no_secret.get("secret"),
        None,
        "told only once, or to who proves it"
    );

    // A crashed holder: its connection is gone, so an unchanged client re-adds without proof.
    drop(new);
    admin.wait_status(&s, "w1", "offline").await;
    let restarted = bus.connect().await;
    restarted.add_agent(&s, "w1", "Worker").await;
    assert_eq!(
        intruder
            .call(add(json!({ "id": "w1" })))
            .await
            .error
            .unwrap()
            .code,
        "agent_busy"
    );
}
