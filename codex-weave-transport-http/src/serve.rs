//! The HTTP server loop: hyper's HTTP/1 connections (what `axum::serve` runs) with the limits
//! `axum::serve` does not expose.
//! - **Header-read timeout**: a client has [`HEADER_READ_TIMEOUT`] to send a request's headers,
//!   from the moment the connection waits for them (at connect, and between two requests of a
//!   kept-alive connection); else it is closed. A slowloris client cannot hold sockets forever.
//! - **Bounded shutdown**: once `stop` is cancelled nothing new is accepted, open requests get
//!   [`DRAIN_WITHIN`] to finish (SSE streams end on the same signal), then connections close.

use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open requests may take to finish at shutdown.
pub const DRAIN_WITHIN: Duration = Duration::from_secs(3);

/// Serves on `listener` until `stop` is cancelled, then drains (bounded). Each connection is
/// served by the router `apps` holds when it is accepted (a daemon of a cluster swaps it as it
/// starts and stops leading).
pub async fn serve(listener: TcpListener, apps: watch::Receiver<Router>, stop: CancellationToken) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait a little instead of spinning.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = apps.borrow().clone();
        let service = TowerToHyperService::new(app);
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_WITHIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("HTTP connections still open after the drain were closed");
    }
}
