//! Stopping on SIGTERM or SIGINT.

use std::future::Future;

/// Resolves at the first SIGTERM or SIGINT. The handlers are installed when this is called,
/// not when the future is first polled: a binary calls it before it says it is listening, so
/// that a signal sent the moment it does is seen. (Installed lazily, a SIGTERM sent right after
/// the "listening" line could land between the handler's installation and its listener and be
/// lost, leaving the process running: a test hung on exactly that.)
///
/// Must be called inside a tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let listeners = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = listeners else {
            tracing::error!("cannot install signal handlers; stop the process with kill -9");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
    }
}
