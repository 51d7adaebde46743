//! NATS beside the bus, in the same run, when `nats-server` is installed (Debian's package; the
//! bench installs nothing): core request-reply, and JetStream publish → deliver → ack (file
//! storage, a durable pull consumer with explicit acks) with one message in flight and with a
//! window of many. Same payload text as the bus. Clients: `async-nats`.

use std::collections::VecDeque;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;

use crate::stats::{Latencies, Throughput};

/// A `nats-server` with JetStream on a free loopback port and a temporary store directory,
/// killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts one, if `nats-server` is on the PATH.
    pub async fn start() -> Option<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let dir = tempfile::TempDir::new().ok()?;
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = Server {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _dir: dir,
        };
        for _ in 0..100 {
            if async_nats::connect(&server.url).await.is_ok() {
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// `nats-server --version`.
    pub fn version() -> String {
        Command::new("nats-server")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Core request-reply: a responder echoes each request; `trips` requests one at a time.
pub async fn request_reply(url: &str, text: &str, trips: usize) -> (Latencies, String) {
    let responder = async_nats::connect(url).await.expect("nats responder");
    let mut requests = responder.subscribe("bench.echo").await.expect("subscribe");
    let echo = tokio::spawn(async move {
        while let Some(m) = requests.next().await {
            if let Some(reply) = m.reply {
                let _ = responder.publish(reply, m.payload).await;
            }
        }
    });
    let client = async_nats::connect(url).await.expect("nats client");
    let mut lat = Latencies::default();
    let mut wrong = 0;
    for i in 0..trips {
        let body = format!("{i} {text}");
        let t = Instant::now();
        let answer = client
            .request("bench.echo", body.clone().into())
            .await
            .expect("reply");
        lat.push(t.elapsed());
        wrong += usize::from(answer.payload != body.as_bytes());
    }
    echo.abort();
    (lat, format!("{trips} replies, {wrong} wrong"))
}

/// A file-backed stream and a durable pull consumer with explicit acks, at most `window`
/// unacked deliveries.
async fn stream_and_consumer(
    url: &str,
    name: &str,
    window: usize,
) -> (jetstream::Context, consumer::PullConsumer) {
    let client = async_nats::connect(url).await.expect("nats client");
    let js = jetstream::new(client);
    let stream = js
        .create_stream(stream::Config {
            name: name.to_owned(),
            subjects: vec![format!("{name}.>")],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .expect("stream");
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(format!("{name}-reader")),
            ack_policy: consumer::AckPolicy::Explicit,
            max_ack_pending: window as i64,
            ..Default::default()
        })
        .await
        .expect("consumer");
    (js, consumer)
}

/// JetStream with one message in flight: publish (and wait for the stream's ack), receive it
/// from the consumer, ack it. The time of the whole round.
pub async fn jetstream_trips(url: &str, text: &str, trips: usize) -> (Latencies, String) {
    let (js, consumer) = stream_and_consumer(url, "trips", 1).await;
    let mut messages = consumer.messages().await.expect("messages");
    let mut lat = Latencies::default();
    let (mut wrong, mut out_of_order) = (0, 0);
    for i in 0..trips {
        let body = format!("{i} {text}");
        let t = Instant::now();
        js.publish("trips.m", body.clone().into())
            .await
            .expect("publish")
            .await
            .expect("stored");
        let m = messages
            .next()
            .await
            .expect("a message")
            .expect("delivered");
        m.ack().await.expect("ack");
        lat.push(t.elapsed());
        wrong += usize::from(m.payload != body.as_bytes());
        out_of_order += usize::from(m.info().ok().map(|i| i.stream_sequence) != Some(i as u64 + 1));
    }
    (
        lat,
        format!("{trips} once, {wrong} wrong, {out_of_order} out of order"),
    )
}

/// JetStream throughput: `count` messages published with at most `window` awaiting the stream's
/// ack, received and acked by the consumer (at most `window` unacked). Every message once, in
/// order.
pub async fn jetstream_throughput(
    url: &str,
    text: &str,
    count: usize,
    window: usize,
) -> Throughput {
    let (js, consumer) = stream_and_consumer(url, "tput", window).await;
    let mut messages = consumer.messages().await.expect("messages");
    let started = Instant::now();
    let receiver = tokio::spawn(async move {
        let (mut next, mut bad) = (0usize, 0usize);
        while next < count {
            let Some(Ok(m)) = messages.next().await else {
                break;
            };
            let seq = std::str::from_utf8(&m.payload)
                .ok()
                .and_then(|p| p.split(' ').next()?.parse::<usize>().ok());
            bad += usize::from(seq != Some(next));
            m.ack().await.expect("ack");
            next += 1;
        }
        (next, bad)
    });
    let mut pending = VecDeque::with_capacity(window);
    let mut refused = 0;
    for i in 0..count {
        if pending.len() == window {
            let ack: jetstream::context::PublishAckFuture = pending.pop_front().expect("pending");
            refused += usize::from(ack.await.is_err());
        }
        let ack = js
            .publish("tput.m", format!("{i} {text}").into())
            .await
            .expect("publish");
        pending.push_back(ack);
    }
    for ack in pending {
        refused += usize::from(ack.await.is_err());
    }
    let (received, bad) = receiver.await.expect("receiver");
    let rate = count as f64 / started.elapsed().as_secs_f64();
    Throughput {
        rate,
        check: format!(
            "{count} published, {refused} refused, {received} received and acked, {bad} out of order"
        ),
        cpu: Vec::new(),
    }
}
