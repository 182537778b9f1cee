//! The one writer of the state while the engine runs: the step tasks send
//! what they finished over a channel, and [`StateWriter`] alone records it
//! in the [`State`] it owns and saves it, answering each step with the
//! save's result (a full disk fails that step, never silently).

use std::future::Future;
use std::path::PathBuf;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::state::{State, StepRecord};
use crate::topology::Phase;

/// A step that finished on its node: what the state keeps of it.
#[derive(Debug)]
pub struct StepDone {
    pub node: String,
    pub phase: Phase,
    pub record: StepRecord,
}

/// A step task's end of the channel to the [`StateWriter`].
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<(StepDone, oneshot::Sender<Result<()>>)>,
}

impl Recorder {
    /// Sends `done` to the writer and waits until it is saved.
    pub async fn record(&self, done: StepDone) -> Result<()> {
        let (node, phase) = (done.node.clone(), done.phase);
        let (saved, answer) = oneshot::channel();
        let gone = || {
            Error::other(
                format!(
                    "the {phase} phase finished on {node}, but the state writer had stopped (a kubelab bug)"
                ),
                "the next `kubelab lab up` runs the step again",
            )
        };
        self.tx.send((done, saved)).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Owns the lab's state for the length of a run and saves it after every
/// step it is sent.
pub struct StateWriter {
    state: State,
    path: PathBuf,
}

impl StateWriter {
    pub fn new(state: State, path: PathBuf) -> StateWriter {
        StateWriter { state, path }
    }

    /// The state as it stands (the engine reads the previous records).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Records `done` and writes the state: a kill loses at most the steps
    /// still running.
    fn write(&mut self, done: StepDone) -> Result<()> {
        let (node, phase) = (done.node.clone(), done.phase);
        self.state
            .steps
            .entry(done.node)
            .or_default()
            .insert(done.phase.name().to_string(), done.record);
        self.state.save(&self.path).map_err(|e| {
            Error::other(
                format!(
                    "the {phase} phase finished on {node}, but kubelab could not record it: {e}"
                ),
                "free space for .kubelab/state.json; the next `kubelab lab up` runs the step again",
            )
        })
    }

    /// Runs the work `start` makes from a [`Recorder`] and writes every
    /// record it sends, until the work has ended (also after a failure or
    /// an interrupt: a step that finished is recorded). Returns the work's
    /// output and the state with every record in it.
    pub async fn run<F: Future>(mut self, start: impl FnOnce(Recorder) -> F) -> (F::Output, State) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let work = start(Recorder { tx });
        tokio::pin!(work);
        let output = loop {
            tokio::select! {
                biased;
                Some((done, saved)) = rx.recv() => {
                    let _ = saved.send(self.write(done));
                }
                output = &mut work => break output,
            }
        };
        // A record sent but never waited for (its task was dropped).
        while let Ok((done, saved)) = rx.try_recv() {
            let _ = saved.send(self.write(done));
        }
        (output, self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(node: &str, phase: Phase) -> StepDone {
        StepDone {
            node: node.into(),
            phase,
            record: StepRecord {
                input_hash: format!("{node}-{phase}"),
                vm_id: None,
                files: Default::default(),
                finished_unix: 1,
            },
        }
    }

    fn recorded(state: &State) -> Vec<String> {
        state
            .steps
            .iter()
            .flat_map(|(node, phases)| phases.keys().map(move |p| format!("{node} {p}")))
            .collect()
    }

    /// Three steps run at once; one fails. Each one that finished, one of
    /// them after the failure, is on disk as soon as it finished.
    #[tokio::test]
    async fn every_finished_step_is_recorded_when_one_step_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let writer = StateWriter::new(State::new("t"), path.clone());
        let state_path = path.clone();
        let (result, state) = writer
            .run(|recorder| async move {
                let step = |node: &'static str, fails: bool, ms: u64| {
                    let recorder = recorder.clone();
                    let path = state_path.clone();
                    async move {
                        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                        if fails {
                            // Saved when it finished, not at the end of the run.
                            let on_disk = State::load(&path, "t").unwrap();
                            assert_eq!(recorded(&on_disk), ["etcd0 etcd"]);
                            return Err(Error::other(format!("{node} failed"), ""));
                        }
                        recorder.record(done(node, Phase::Etcd)).await
                    }
                };
                let (a, b, c) = tokio::join!(
                    step("etcd0", false, 10),
                    step("etcd1", true, 20),
                    step("etcd2", false, 40)
                );
                a.and(b).and(c)
            })
            .await;
        assert!(result.is_err());
        assert_eq!(recorded(&state), ["etcd0 etcd", "etcd2 etcd"]);
        let saved = State::load(&path, "t").unwrap();
        assert_eq!(recorded(&saved), ["etcd0 etcd", "etcd2 etcd"]);
        assert_eq!(saved.steps["etcd2"]["etcd"].input_hash, "etcd2-etcd");
    }

    /// A save that fails fails the step that sent it, naming it.
    #[tokio::test]
    async fn a_failed_save_is_the_steps_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocked = dir.path().join("file");
        std::fs::write(&blocked, "").unwrap();
        let writer = StateWriter::new(State::new("t"), blocked.join("state.json"));
        let (result, _) = writer
            .run(|recorder| async move { recorder.record(done("worker0", Phase::Workers)).await })
            .await;
        let message = result.unwrap_err().to_string();
        assert!(
            message.contains("finished on worker0, but kubelab could not record it"),
            "{message}"
        );
    }
}
