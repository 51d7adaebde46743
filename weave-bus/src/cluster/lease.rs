//! The cluster's lease: which daemon runs the engine. A key-value stream (one message per
//! subject, what a JetStream KV bucket is underneath) holds one value per cluster name, the
//! holder's node id. Every write names the sequence it read (`Nats-Expected-Last-Subject-
//! Sequence`), so of two daemons taking or renewing at once exactly one succeeds.
//!
//! Expiry is judged by each reader's own clock, never by comparing clocks across machines: a
//! follower takes the lease once the value it reads has not changed for [`EXPIRY`]; the holder
//! renews every [`RENEW`] and stops writing once [`HOLD`] has passed since it sent its last
//! successful renewal. `HOLD` < `EXPIRY`, so the holder gives up before anyone takes over.

use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use async_nats::jetstream::Context;

/// How often the holder renews, and a follower reads.
pub const RENEW: Duration = Duration::from_secs(1);
/// How long the holder keeps leading without a successful renewal.
pub const HOLD: Duration = Duration::from_secs(6);
/// How long a follower waits for an unchanged value before it takes the lease.
pub const EXPIRY: Duration = Duration::from_secs(8);

/// The stream every Weave cluster's lease lives on (subject `WEAVE_LEASES.<cluster name>`).
const STREAM: &str = "WEAVE_LEASES";

/// The lease as read: its sequence (what the next write must name) and holder (empty: released).
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub seq: u64,
    pub holder: String,
}

#[derive(Clone)]
pub struct Lease {
    js: Context,
    subject: String,
}

impl Lease {
    /// The lease of cluster `name`; creates its stream if it is missing. Tries for up to 30 s:
    /// right after a NATS server died, the cluster may still be electing its meta leader.
    pub async fn open(js: Context, name: &str, replicas: usize) -> Result<Lease, String> {
        let config = stream::Config {
            name: STREAM.to_owned(),
            subjects: vec![format!("{STREAM}.>")],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            max_messages_per_subject: 1,
            ..Default::default()
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let tried = tokio::time::timeout(
                Duration::from_secs(5),
                js.get_or_create_stream(config.clone()),
            );
            let error = match tried.await {
                Ok(Ok(_)) => break,
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no answer within 5 s".to_owned(),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("the lease stream: {error}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Lease {
            js,
            subject: format!("{STREAM}.{name}"),
        })
    }

    /// The lease now (`None`: never taken).
    pub async fn read(&self) -> Result<Option<Held>, String> {
        let stream = self
            .js
            .get_stream_no_info(STREAM)
            .await
            .map_err(|e| e.to_string())?;
        match stream.get_last_raw_message_by_subject(&self.subject).await {
            Ok(m) => Ok(Some(Held {
                seq: m.sequence,
                holder: String::from_utf8_lossy(&m.payload).into_owned(),
            })),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Writes `holder` over the value at sequence `after` (0: none). `Ok(Some(seq))`: written,
    /// at `seq`; `Ok(None)`: someone wrote since `after` (the lease is not ours).
    pub async fn write(&self, after: u64, holder: &str) -> Result<Option<u64>, String> {
        let message = PublishMessage::build()
            .payload(holder.to_owned().into())
            .expected_last_subject_sequence(after);
        let ack = self
            .js
            .send_publish(self.subject.clone(), message)
            .await
            .map_err(|e| e.to_string())?
            .await;
        match ack {
            Ok(ack) => Ok(Some(ack.sequence)),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}
