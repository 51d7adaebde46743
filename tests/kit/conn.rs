//! A socket connection through the transport's client, and the envelopes tests send.

use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::Path;
use std::time::Duration;

use codex_weave_transport_uds::{Client, Envelope, Framing};
use serde_json::Value;
use tokio::net::UnixStream;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::{framing, Deadline, WAIT};

/// One socket connection: requests, and the other lines it receives. Dropping it closes the
/// socket at once, as a client process that exits or crashes does (the transport's own tasks
/// would close it a moment later).
pub struct Conn {
    pub client: Client,
    pub events: UnboundedReceiver<Envelope>,
    closer: Closer,
}

/// Shuts the socket down when dropped, unless disarmed.
struct Closer(Option<StdUnixStream>);

impl Drop for Closer {
    fn drop(&mut self) {
        if let Some(socket) = &self.0 {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

impl Conn {
    pub async fn open(socket: &Path) -> Conn {
        Conn::open_with(socket, framing()).await
    }

    pub async fn open_with(socket: &Path, framing: Framing) -> Conn {
        let stream = UnixStream::connect(socket).await.expect("connect");
        let dup = stream.as_fd().try_clone_to_owned().expect("dup");
        let (client, events) = Client::open(stream, framing).await.expect("connect");
        Conn {
            client,
            events,
            closer: Closer(Some(StdUnixStream::from(dup))),
        }
    }

    /// The client and its lines, for a task of their own; the connection then closes when the
    /// client's tasks end.
    pub fn into_parts(mut self) -> (Client, UnboundedReceiver<Envelope>) {
        self.closer.0 = None;
        (self.client, self.events)
    }

    pub async fn req(
        &self,
        kind: &str,
        session: Option<&str>,
        src: &str,
        payload: Value,
    ) -> Envelope {
        let env = envelope(kind, session, src, payload);
        tokio::time::timeout(WAIT, self.client.request(env))
            .await
            .expect("response in time")
            .expect("response")
    }

    /// Sends a request and asserts it is answered `ok`.
    pub async fn ok(
        &self,
        kind: &str,
        session: Option<&str>,
        src: &str,
        payload: Value,
    ) -> Envelope {
        let resp = self.req(kind, session, src, payload).await;
        assert_eq!(resp.error, None, "{kind} refused");
        resp
    }

    /// Sends a request and returns its error code (asserting it is refused).
    pub async fn err(
        &self,
        kind: &str,
        session: Option<&str>,
        src: &str,
        payload: Value,
    ) -> String {
        let resp = self.req(kind, session, src, payload).await;
        match resp.error {
            Some(e) => e.code,
            None => panic!("{kind} was accepted: {:?}", resp.payload),
        }
    }

    /// Waits until the bus reports agent `id` as `status` ("online"/"offline").
    pub async fn wait_status(&self, session: &str, id: &str, status: &str) {
        let deadline = Deadline::new();
        loop {
            let list = self
                .ok("agent.list", Some(session), "t", Value::Null)
                .await
                .payload
                .unwrap();
            if list["agents"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["id"] == id && a["status"] == status)
            {
                return;
            }
            deadline.tick(&format!("{id} never became {status}")).await;
        }
    }

    pub async fn create_session(&self, name: &str) -> String {
        let resp = self
            .ok(
                "session.create",
                None,
                "tester",
                serde_json::json!({ "name": name }),
            )
            .await;
        resp.session.unwrap()
    }

    pub async fn add_agent(&self, session: &str, id: &str, name: &str) -> Envelope {
        self.ok(
            "agent.add",
            Some(session),
            id,
            serde_json::json!({ "id": id, "name": name }),
        )
        .await
    }

    /// Sends any request envelope and returns the response.
    pub async fn call(&self, env: Envelope) -> Envelope {
        tokio::time::timeout(WAIT, self.client.request(env))
            .await
            .expect("response in time")
            .expect("response")
    }

    /// `message.send` of `text` from `src` to `dst`, asserted `ok`.
    pub async fn send(&self, session: &str, src: &str, dst: &str, text: &str) -> Envelope {
        let resp = self.call(message(session, src, dst, text)).await;
        assert_eq!(resp.error, None, "message.send refused");
        resp
    }

    /// The next line that is not a response, within [`WAIT`].
    pub async fn next(&mut self) -> Envelope {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("a line in time")
            .expect("connection open")
    }

    /// The next line of type `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Envelope {
        loop {
            let env = self.next().await;
            if env.kind == kind {
                return env;
            }
        }
    }

    /// Asserts no line of `kind` arrives within `within`.
    pub async fn none_of(&mut self, kind: &str, within: Duration) {
        let _ = tokio::time::timeout(within, async {
            while let Some(env) = self.events.recv().await {
                assert_ne!(env.kind, kind, "unexpected {kind}: {env:?}");
            }
        })
        .await;
    }

    pub fn ack(&self, session: &str, src: &str, delivery: &Envelope) {
        let mut ack = envelope("message.ack", Some(session), src, Value::Null);
        ack.payload = None;
        ack.corr = Some(delivery.corr.clone().unwrap_or(delivery.id.clone()));
        self.client.send(ack).unwrap();
    }
}

/// Builds a request envelope (id and ts are filled in by the client).
pub fn envelope(kind: &str, session: Option<&str>, src: &str, payload: Value) -> Envelope {
    let mut env = Envelope::new(kind, String::new(), String::new(), src);
    env.session = session.map(str::to_owned);
    if !payload.is_null() {
        env.payload = Some(payload);
    }
    env
}

/// `message.send` from `src` to `dst` with `text` (and optional `ack`).
pub fn message(session: &str, src: &str, dst: &str, text: &str) -> Envelope {
    let mut env = envelope(
        "message.send",
        Some(session),
        src,
        serde_json::json!({ "text": text }),
    );
    env.dst = Some(dst.to_owned());
    env
}

pub fn text_of(env: &Envelope) -> &str {
    env.payload
        .as_ref()
        .and_then(|p| p.get("text"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn meta_weave<'a>(env: &'a Envelope, field: &str) -> Option<&'a Value> {
    env.meta.as_ref()?.get("weave")?.get(field)
}
