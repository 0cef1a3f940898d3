//! A member's background chores: a job run at a fixed period until the member closes.

use std::future::Future;
use std::ops::ControlFlow;
use std::time::Duration;

use tokio::sync::watch;

/// Runs `job` every `period` (the first time one period after the start) until `closing`
/// turns true or `job` says to stop.
pub(crate) fn every<F, Fut>(
    period: Duration,
    mut closing: watch::Receiver<bool>,
    mut job: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ControlFlow<()>> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = closing.wait_for(|c| *c) => return,
            }
            if job().await.is_break() {
                return;
            }
        }
    })
}
