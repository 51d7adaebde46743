//! The transaction log on JetStream: one stream per cluster, one subject per store. A
//! transaction is one message — or, past the servers' `max_payload`, consecutive parts headed
//! `Weave-Txn` and `Weave-Part: i/k`, applied only once all have landed — each published fenced
//! on the stream sequence of the one before it (`Nats-Expected-Last-Subject-Sequence`), so a
//! second writer is refused, and with a message id so a retried publish lands once.

use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::{PublishMessage, StreamMessage};
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::{self, stream};

use tokio_util::sync::CancellationToken;

use crate::store::backend::{StoreError, StoreResult};

/// How long a publish or a read may keep trying (a stream or meta leader being elected after a
/// server died takes seconds) before the transaction or the start fails.
const PATIENCE: Duration = Duration::from_secs(30);
/// How long one try may wait for an answer.
const TRY: Duration = Duration::from_secs(5);

/// Runs `attempt` until it succeeds, or until [`PATIENCE`] has passed (then its last error),
/// or at once when `deposed` is cancelled (this daemon no longer leads its cluster).
/// Every caller's attempt is safe to repeat: reads, and appends with the same message id.
async fn patiently<T, E: std::fmt::Display, F, Fut>(
    what: &str,
    deposed: &CancellationToken,
    mut attempt: F,
) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let tried = tokio::select! {
            tried = tokio::time::timeout(TRY, attempt()) => tried,
            () = deposed.cancelled() => {
                return Err(failed(
                    what,
                    "this daemon lost its cluster's lease: another daemon leads (fenced)",
                ))
            }
        };
        let error = match tried {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} s", TRY.as_secs()),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(failed(what, error));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::other(format!("NATS JetStream: {what}: {e}"))
}

pub struct Log {
    runtime: tokio::runtime::Runtime,
    js: jetstream::Context,
    stream: String,
    subject: String,
    /// The largest part: the servers' `max_payload`, less room for headers.
    pub(super) part_bytes: usize,
    /// Cancelled when this daemon loses its cluster's lease: whatever waits fails at once.
    deposed: CancellationToken,
}

/// One message of the log: a transaction, or a part of one.
pub struct Part {
    pub seq: u64,
    pub txn: String,
    /// 1-based, and how many the transaction has.
    pub index: usize,
    pub count: usize,
    pub body: Vec<u8>,
}

impl Log {
    /// Connects to `urls` (comma-separated) and creates the stream if it is missing (its
    /// replicas are those of the first daemon that created it).
    pub fn open(
        urls: &str,
        stream: &str,
        subject: &str,
        replicas: usize,
        deposed: CancellationToken,
    ) -> StoreResult<Log> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("weave-nats")
            .enable_all()
            .build()?;
        let (js, max_payload) = runtime.block_on(async {
            let client = async_nats::ConnectOptions::new()
                .connect(urls.split(',').map(str::trim).collect::<Vec<_>>())
                .await
                .map_err(|e| failed("connect", e))?;
            let max_payload = client.server_info().max_payload;
            let js = jetstream::new(client);
            let config = stream::Config {
                name: stream.to_owned(),
                subjects: vec![format!("{stream}.>")],
                storage: stream::StorageType::File,
                num_replicas: replicas,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            };
            let mut created = patiently("stream", &deposed, || {
                js.get_or_create_stream(config.clone())
            })
            .await?;
            let kept = created
                .info()
                .await
                .map(|i| i.config.num_replicas)
                .unwrap_or(replicas);
            if kept != replicas {
                tracing::warn!(
                    stream,
                    kept,
                    replicas,
                    "the stream keeps the replicas it was created with"
                );
            }
            Ok::<_, StoreError>((js, max_payload))
        })?;
        Ok(Log {
            runtime,
            js,
            stream: stream.to_owned(),
            subject: format!("{stream}.{subject}"),
            part_bytes: max_payload.saturating_sub(4096).max(1024),
            deposed,
        })
    }

    /// The stream sequence of the last transaction on the subject (0: none yet).
    pub fn last(&self) -> StoreResult<u64> {
        self.runtime
            .block_on(patiently("last transaction", &self.deposed, || async {
                let s = self
                    .js
                    .get_stream(&self.stream)
                    .await
                    .map_err(|e| e.to_string())?;
                match s.get_last_raw_message_by_subject(&self.subject).await {
                    Ok(m) => Ok(m.sequence),
                    Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(0),
                    Err(e) => Err(e.to_string()),
                }
            }))
    }

    /// Appends transaction `txn` after the message at stream sequence `after`, in as many parts
    /// as its size needs; the sequence of its last part. Refused (with a clear error) when
    /// another writer appended since.
    pub fn append(&self, txn: &str, after: u64, body: &[u8]) -> StoreResult<u64> {
        let parts: Vec<&[u8]> = if body.is_empty() {
            vec![body]
        } else {
            body.chunks(self.part_bytes).collect()
        };
        let mut last = after;
        for (i, part) in parts.iter().enumerate() {
            last = self.publish(txn, i + 1, parts.len(), last, part)?;
        }
        Ok(last)
    }

    /// One message of the log, tried again (same id, same fence: it lands once) while the
    /// cluster does not answer.
    pub(super) fn publish(
        &self,
        txn: &str,
        index: usize,
        count: usize,
        after: u64,
        body: &[u8],
    ) -> StoreResult<u64> {
        let appended = self
            .runtime
            .block_on(patiently("append", &self.deposed, || async {
                let message = PublishMessage::build()
                    .payload(body.to_vec().into())
                    .message_id(format!("{txn}:{index}"))
                    .header("Weave-Txn", txn)
                    .header("Weave-Part", format!("{index}/{count}").as_str())
                    .expected_last_subject_sequence(after);
                let ack = match self.js.send_publish(self.subject.clone(), message).await {
                    Ok(ack) => ack.await,
                    Err(e) => return Err(e.to_string()),
                };
                match ack {
                    Ok(ack) => Ok(Some(ack.sequence)),
                    // No use trying again: another writer appended since.
                    Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(None),
                    Err(e) => Err(e.to_string()),
                }
            }))?;
        appended.ok_or_else(|| {
            StoreError::other(
                "NATS JetStream: another writer appended to this store's log (fenced): \
                 this daemon no longer writes it",
            )
        })
    }

    /// The log's messages after stream sequence `after`, through `last`, in order. Each is
    /// asked of the stream's leader by sequence and subject (`STREAM.MSG.GET`, next for the
    /// subject): no consumer, so no request to the cluster's meta leader, which may be being
    /// elected right after a server died.
    pub fn after(&self, after: u64, last: u64) -> StoreResult<Vec<Part>> {
        let mut out = Vec::new();
        let mut next = after + 1;
        while next <= last {
            let m = self
                .runtime
                .block_on(patiently("read", &self.deposed, || async {
                    let s = self
                        .js
                        .get_stream_no_info(&self.stream)
                        .await
                        .map_err(|e| e.to_string())?;
                    s.raw_message_builder()
                        .sequence(next)
                        .next_by_subject(self.subject.clone())
                        .send()
                        .await
                        .map_err(|e| e.to_string())
                }))?;
            next = m.sequence + 1;
            out.push(part(&m)?);
        }
        Ok(out)
    }
}

/// A message read back, with its headers.
fn part(m: &StreamMessage) -> StoreResult<Part> {
    let seq = m.sequence;
    let header = |name: &str| m.headers.get(name).map(|v| v.as_str().to_owned());
    let (index, count) = header("Weave-Part")
        .and_then(|p| {
            let (i, k) = p.split_once('/')?;
            Some((i.parse().ok()?, k.parse().ok()?))
        })
        .ok_or_else(|| failed("read", format!("message {seq} has no Weave-Part")))?;
    Ok(Part {
        seq,
        txn: header("Weave-Txn").unwrap_or_default(),
        index,
        count,
        body: m.payload.to_vec(),
    })
}
