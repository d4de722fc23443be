//! Shutdown on SIGINT/SIGTERM/SIGHUP (a closed terminal or dropped ssh session): one cancellation token the whole binary listens to, so every
//! exit path runs the same cleanup (revert faults, flush samplers, drop scratch databases).

use std::sync::atomic::{AtomicI32, Ordering};
use tokio_util::sync::CancellationToken;

static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// A token cancelled when SIGINT, SIGTERM or SIGHUP arrives. Call once, early, inside the runtime.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            tracing::warn!("cannot install signal handlers; Ctrl-C will not clean up");
            return;
        };
        let name = tokio::select! {
            _ = int.recv() => { RECEIVED.store(2, Ordering::SeqCst); "SIGINT" }
            _ = term.recv() => { RECEIVED.store(15, Ordering::SeqCst); "SIGTERM" }
            _ = hup.recv() => { RECEIVED.store(1, Ordering::SeqCst); "SIGHUP" }
        };
        tracing::warn!("{name} received: stopping and cleaning up");
        t.cancel();
    });
    token
}

/// The signal that cancelled the token, if any (e.g. "SIGINT").
pub fn received() -> Option<&'static str> {
    match RECEIVED.load(Ordering::SeqCst) {
        2 => Some("SIGINT"),
        15 => Some("SIGTERM"),
        1 => Some("SIGHUP"),
        _ => None,
    }
}
