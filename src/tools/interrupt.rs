//! The one Ctrl-C behaviour of every command. On Ctrl-C (SIGINT) or SIGTERM
//! no new command starts, the running children (each in its own process
//! group, so the terminal's SIGINT never reached them) get one SIGINT, the
//! interrupted work runs on to its end (it records what it did), and what
//! still runs after a grace period is killed. The command then exits 130
//! (`Error::Interrupted`), with its own hint on how to carry on.

use std::future::Future;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::Children;
use crate::error::{Error, Result};

/// Ctrl-C (SIGINT) and SIGTERM, caught from [`Interrupt::listen`] on. For
/// work that must stop waiting on an interrupt but do its own clean-up
/// (`lab verify`'s lb-failover starts haproxy again); the rest goes through
/// [`interruptible`].
pub struct Interrupt {
    int: Signal,
    term: Signal,
}

impl Interrupt {
    pub fn listen() -> std::io::Result<Interrupt> {
        Ok(Interrupt {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// The next Ctrl-C or SIGTERM.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// What to do on an interrupt, besides stopping the children.
pub struct OnInterrupt<'a> {
    /// How long the children get after their SIGINT before they are killed.
    pub grace: Duration,
    /// Said before the children are asked to stop (the wait can be long).
    pub notice: Option<&'a dyn Fn()>,
    /// The `hint:` of the error the command exits with.
    pub hint: Option<String>,
    /// Whether the interrupted work runs on to its end (work that records
    /// what it did: `lab up`), or is dropped at once (work that records
    /// nothing and would only wait on: the checks, whose clean-up the caller
    /// runs itself).
    pub finish: bool,
}

/// Runs `work` to its end, or, on Ctrl-C or SIGTERM first, stops
/// `children` as the module says and returns `Error::Interrupted` with
/// `on.hint` once `work` has ended (its result is dropped: what it did is
/// recorded by `work` itself).
pub async fn interruptible<F: Future>(
    children: &Children,
    on: OnInterrupt<'_>,
    work: F,
) -> Result<F::Output> {
    let mut interrupt = Interrupt::listen()?;
    interruptible_by(children, on, work, interrupt.recv()).await
}

/// [`interruptible`] with the interrupt as a future: the tests hand it one
/// instead of raising a signal in the test process, which every other
/// test's listener would get too.
async fn interruptible_by<F: Future>(
    children: &Children,
    on: OnInterrupt<'_>,
    work: F,
    interrupt: impl Future<Output = ()>,
) -> Result<F::Output> {
    tokio::pin!(work);
    tokio::select! {
        output = &mut work => return Ok(output),
        () = interrupt => {}
    }
    if let Some(notice) = on.notice {
        notice();
    }
    children.begin_interrupt();
    if on.finish {
        let _ = tokio::join!(work, children.interrupt(on.grace));
    } else {
        // Not polled again: the work is dropped with this frame.
        children.interrupt(on.grace).await;
    }
    Err(Error::Interrupted { hint: on.hint })
}

/// Runs `work`, which must not be cut short (a snapshot resumes the VMs it
/// paused, or boots again the ones it halted): Ctrl-C or SIGTERM meanwhile
/// is said (`notice`, once) and otherwise waited out.
pub async fn shielded<F: Future>(notice: &dyn Fn(), work: F) -> Result<F::Output> {
    let mut interrupt = Interrupt::listen()?;
    tokio::pin!(work);
    let mut said = false;
    loop {
        tokio::select! {
            output = &mut work => return Ok(output),
            () = interrupt.recv(), if !said => {
                notice();
                said = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The work that was running when Ctrl-C came runs to its end (it
    /// records what it did), no new command starts, and the command
    /// exits as interrupted with its hint.
    #[tokio::test]
    async fn an_interrupt_lets_the_work_finish_and_ends_as_interrupted() {
        let children = Children::default();
        let noticed = std::cell::Cell::new(false);
        let finished = std::cell::Cell::new(false);
        let notice = || noticed.set(true);
        let on = OnInterrupt {
            grace: Duration::from_secs(2),
            notice: Some(&notice),
            hint: Some("run it again".into()),
            finish: true,
        };
        let work = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            finished.set(true);
        };
        let result = interruptible_by(&children, on, work, async {}).await;
        let Err(Error::Interrupted { hint }) = result else {
            panic!("not interrupted: {result:?}");
        };
        assert_eq!(hint.as_deref(), Some("run it again"));
        assert!(noticed.get() && finished.get() && children.interrupted());
    }

    #[tokio::test]
    async fn work_that_ends_first_is_its_own_result() {
        let on = OnInterrupt {
            grace: Duration::from_secs(2),
            notice: None,
            hint: None,
            finish: true,
        };
        let result = interruptible(&Children::default(), on, async { 7 }).await;
        assert_eq!(result.unwrap(), 7);
    }

    /// Work that records nothing is dropped at once: a check waiting 60 s
    /// for a VIP does not hold the interrupted command that long.
    #[tokio::test]
    async fn work_that_need_not_finish_is_dropped_at_once() {
        let finished = std::cell::Cell::new(false);
        let on = OnInterrupt {
            grace: Duration::from_secs(2),
            notice: None,
            hint: None,
            finish: false,
        };
        let work = async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            finished.set(true);
        };
        let started = std::time::Instant::now();
        let result = interruptible_by(&Children::default(), on, work, async {}).await;
        assert!(
            matches!(result, Err(Error::Interrupted { .. })),
            "{result:?}"
        );
        assert!(!finished.get());
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "it waited for the work"
        );
    }
}
