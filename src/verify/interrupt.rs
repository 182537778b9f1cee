//! The one interrupt helper of the checks: `kubelab doctor`'s host checks
//! and the disruptive checks of `lab verify` stop waiting on Ctrl-C or
//! SIGTERM, each then doing what it must before it returns.

use std::future::Future;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::tools::Runner;

/// How long the ssh children get after an interrupt before they are killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(2);

/// Ctrl-C (SIGINT) and SIGTERM, caught from [`Interrupt::listen`] on.
pub(crate) struct Interrupt {
    int: Signal,
    term: Signal,
}

impl Interrupt {
    pub(crate) fn listen() -> std::io::Result<Interrupt> {
        Ok(Interrupt {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// The next Ctrl-C or SIGTERM.
    pub(crate) async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// After an interrupt: `runner`'s children (each in its own process group)
/// get it too, and `work` runs to its end; what still runs after
/// [`INTERRUPT_GRACE`] is killed.
pub(crate) async fn stop_children<F: Future>(runner: &Runner, work: F) {
    runner.children.begin_interrupt();
    let _ = tokio::join!(work, runner.children.interrupt(INTERRUPT_GRACE));
}
