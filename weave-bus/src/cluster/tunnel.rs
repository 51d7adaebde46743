//! A client connection carried over core NATS, between the daemon the client connected to
//! and the daemon that leads the cluster. The leader serves it as a connection of its own (one
//! end of a socket pair), so every rule, limit and framing is the one a local client gets.
//!
//! Each side publishes to the other's subject (`weave.<name>.up.<conn>` towards the leader,
//! `weave.<name>.down.<conn>` back) messages of one kind, said by a header:
//! - `Weave-Seq: n` — the next bytes of the stream (n = 1, 2, …; a gap ends the connection:
//!   core NATS may drop messages for a slow subscriber, and bytes must not be lost silently);
//! - `Weave-Credit: total` — how many bytes this side has written out so far; a side sends at
//!   most [`WINDOW`] bytes beyond the other's credit, so a client that stops reading stalls the
//!   leader's writer, and the engine holds its deliveries back as it does for a local one;
//! - `Weave-Ping` — every [`PING`]; a side that hears nothing for [`SILENCE`] ends it;
//! - `Weave-Close: eof` — this side will send no more bytes (the other still may); any other
//!   value ends the connection at once, for the reason given.
//!
//! It ends when the leader's side sent `eof` (the bus closed the connection: the client's socket
//! is closed, as a local bus closes it), or at the first failure; the client then reconnects,
//! as after any dropped connection (its unacked deliveries come again, first and in order).

use std::time::Duration;

use async_nats::{Client, HeaderMap, Subscriber};
use bytes::{BufMut, BytesMut};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Bytes a side may have in flight beyond what the other has written out.
pub const WINDOW: u64 = 1 << 20;
/// The most one message carries.
const CHUNK: usize = 64 * 1024;
pub const PING: Duration = Duration::from_secs(2);
pub const SILENCE: Duration = Duration::from_secs(10);

const SEQ: &str = "Weave-Seq";
const CREDIT: &str = "Weave-Credit";
const CLOSE: &str = "Weave-Close";
const PING_HEADER: &str = "Weave-Ping";

pub fn up(name: &str, conn: &str) -> String {
    format!("weave.{name}.up.{conn}")
}

pub fn down(name: &str, conn: &str) -> String {
    format!("weave.{name}.down.{conn}")
}

/// Which end of a connection a side carries.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client's socket, on the daemon it connected to: once the leader's side is done the
    /// connection is over (the bus closed it), as when a local bus closes a socket.
    Client,
    /// The leader's socket pair: done once both directions are.
    Leader,
}

/// Carries bytes between `local` and the other side (which publishes to `inbox`'s subject and
/// reads `out`) until it is done (see [`End`]), a side fails, or `stop` is cancelled. `Err`
/// says why it ended early.
pub async fn carry(
    nats: &Client,
    out: &str,
    inbox: Subscriber,
    local: UnixStream,
    end: End,
    stop: &CancellationToken,
) -> Result<(), String> {
    let (read, write) = local.into_split();
    let (credit_tx, credit_rx) = watch::channel(0u64);
    let sent_eof = CancellationToken::new();
    let work = async {
        let send = sending(nats, out, read, credit_rx, &sent_eof);
        let recv = receiving(nats, out, inbox, write, credit_tx, &sent_eof, end);
        tokio::pin!(send, recv);
        let mut sent = false;
        loop {
            tokio::select! {
                r = &mut send, if !sent => {
                    r?;
                    sent = true;
                }
                r = &mut recv => return r,
            }
        }
    };
    let result = tokio::select! {
        r = work => r,
        r = pinging(nats, out) => r,
        () = stop.cancelled() => Err("the daemon stopped serving this connection".to_owned()),
    };
    if let Err(why) = &result {
        let _ = publish(nats, out, CLOSE, why, bytes::Bytes::new()).await;
    }
    result
}

async fn publish(
    nats: &Client,
    out: &str,
    header: &str,
    value: &str,
    payload: bytes::Bytes,
) -> Result<(), String> {
    let mut headers = HeaderMap::new();
    headers.insert(header, value);
    nats.publish_with_headers(out.to_owned(), headers, payload)
        .await
        .map_err(|e| format!("publish: {e}"))
}

/// Local bytes to the other side, within its credit; `eof` once the local side closed.
async fn sending(
    nats: &Client,
    out: &str,
    mut read: OwnedReadHalf,
    mut credit: watch::Receiver<u64>,
    sent_eof: &CancellationToken,
) -> Result<(), String> {
    let mut buf = BytesMut::new();
    let (mut sent, mut seq) = (0u64, 0u64);
    loop {
        while sent - *credit.borrow_and_update() >= WINDOW {
            credit
                .changed()
                .await
                .map_err(|_| "the receiving side ended".to_owned())?;
        }
        buf.reserve(CHUNK);
        let n = read
            .read_buf(&mut (&mut buf).limit(CHUNK))
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            publish(nats, out, CLOSE, "eof", bytes::Bytes::new()).await?;
            sent_eof.cancel();
            return Ok(());
        }
        seq += 1;
        sent += n as u64;
        let chunk = buf.split().freeze();
        publish(nats, out, SEQ, &seq.to_string(), chunk).await?;
    }
}

/// The other side's bytes to the local side, with credit back as they are written; returns
/// once the other side sent `eof` and, at the leader's end, this side has too.
async fn receiving(
    nats: &Client,
    out: &str,
    mut inbox: Subscriber,
    mut write: OwnedWriteHalf,
    credit: watch::Sender<u64>,
    sent_eof: &CancellationToken,
    end: End,
) -> Result<(), String> {
    let (mut expect, mut written, mut granted) = (1u64, 0u64, 0u64);
    let mut their_eof = false;
    loop {
        if their_eof && (end == End::Client || sent_eof.is_cancelled()) {
            return Ok(());
        }
        let next = tokio::select! {
            next = tokio::time::timeout(SILENCE, inbox.next()) => Some(next),
            () = sent_eof.cancelled(), if their_eof => None,
        };
        let Some(next) = next else { continue };
        let message = match next {
            Err(_) => return Err(format!("nothing heard for {} s", SILENCE.as_secs())),
            Ok(None) => return Err("the subscription ended".to_owned()),
            Ok(Some(m)) => m,
        };
        let Some(headers) = &message.headers else {
            return Err("a message without a kind".to_owned());
        };
        if let Some(seq) = headers.get(SEQ) {
            if seq.as_str().parse::<u64>() != Ok(expect) || their_eof {
                return Err(format!("message {expect} was lost (got {})", seq.as_str()));
            }
            expect += 1;
            write
                .write_all(&message.payload)
                .await
                .map_err(|e| format!("write: {e}"))?;
            written += message.payload.len() as u64;
            if written - granted >= WINDOW / 4 {
                publish(nats, out, CREDIT, &written.to_string(), bytes::Bytes::new()).await?;
                granted = written;
            }
        } else if let Some(total) = headers.get(CREDIT) {
            let total = total.as_str().parse::<u64>().map_err(|e| e.to_string())?;
            credit.send_if_modified(|c| {
                let raised = total > *c;
                *c = (*c).max(total);
                raised
            });
        } else if let Some(reason) = headers.get(CLOSE) {
            if reason.as_str() != "eof" {
                return Err(format!("the other side ended it: {}", reason.as_str()));
            }
            their_eof = true;
            let _ = write.shutdown().await;
        } else if headers.get(PING_HEADER).is_none() {
            return Err("a message of an unknown kind".to_owned());
        }
    }
}

/// A ping every [`PING`]; never returns unless publishing fails.
async fn pinging(nats: &Client, out: &str) -> Result<(), String> {
    let mut tick = tokio::time::interval(PING);
    loop {
        tick.tick().await;
        publish(nats, out, PING_HEADER, "", bytes::Bytes::new()).await?;
    }
}
