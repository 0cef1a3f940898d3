//! The end of a long-running command or server: SIGTERM (how a service manager stops it) or
//! Ctrl-C (SIGINT), whichever comes first.

/// Completes on SIGTERM (`"terminated"`) or Ctrl-C (`"interrupted"`), saying which.
pub async fn terminated() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = async {
            match signal(SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                // no SIGTERM handler (no signal support): Ctrl-C alone ends it
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "interrupted",
            _ = term => "terminated",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "interrupted"
    }
}

/// [`terminated`] for a shutdown future that needs no word of which signal it was.
pub async fn stopped() {
    terminated().await;
}
