//! The engine: runs the plan's steps phase by phase over SSH, HA roles one
//! node at a time when they are re-applied, and sends each finished step to
//! the one state writer ([`super::record`]).

use super::record::{Recorder, StateWriter, StepDone};
use super::upload::archive;
use super::*;

/// The records of the steps before this run, by node and phase.
type Previous = BTreeMap<String, BTreeMap<String, StepRecord>>;

/// Runs the engine's phases over SSH. `state` is saved after every step.
pub struct Engine<'a> {
    pub lab: &'a Lab,
    /// The topology with every node's facts applied.
    pub topo: Topology,
    pub transport: &'a Transport,
    pub printer: &'a Printer,
    pub state: State,
    pub state_path: std::path::PathBuf,
    pub logs: std::path::PathBuf,
    pub jobs: usize,
    /// Release files a phase copies to its nodes: (path on the node, local file).
    pub uploads: BTreeMap<Phase, Vec<(String, std::path::PathBuf)>>,
}

impl Engine<'_> {
    fn log_path(&self, node: &str, phase: Phase) -> std::path::PathBuf {
        self.logs.join(node).join(format!("{}.log", phase.name()))
    }

    /// Runs every pending step, phase by phase; the state writer records
    /// each step that finishes, also when another one fails.
    pub async fn run(mut self, steps: &[Step]) -> Result<()> {
        let pending: Vec<&Step> = steps
            .iter()
            .filter(|s| s.status != StepStatus::Done)
            .collect();
        if pending.is_empty() {
            self.printer
                .info("provisioning: every selected step is done already");
            return Ok(());
        }
        let writer = StateWriter::new(std::mem::take(&mut self.state), self.state_path.clone());
        let previous = writer.state().steps.clone();
        let (result, _) = writer
            .run(|recorder| self.run_phases(&pending, &previous, recorder))
            .await;
        result
    }

    async fn run_phases(
        &self,
        pending: &[&Step],
        previous: &Previous,
        recorder: Recorder,
    ) -> Result<()> {
        let failed = AtomicBool::new(false);
        for &phase in ENGINE_PHASES {
            let phase_steps: Vec<&Step> = pending
                .iter()
                .copied()
                .filter(|s| s.phase == phase)
                .collect();
            if phase_steps.is_empty() {
                continue;
            }
            let started = Instant::now();
            let serial =
                is_ha(phase) && phase_steps.iter().any(|s| s.status == StepStatus::Changed);
            let jobs = if serial { 1 } else { self.jobs.max(1) };
            // One live line on a terminal; a line per node with -v or piped.
            let progress = self.printer.phase(
                phase.name(),
                phase_steps.len(),
                Some(format!(
                    "{phase}: {} node(s){}",
                    phase_steps.len(),
                    if serial {
                        ", one at a time (re-applying an HA role)"
                    } else {
                        ""
                    }
                )),
            );
            use futures_util::StreamExt;
            let failed_ref = &failed;
            let progress_ref = &progress;
            let recorder_ref = &recorder;
            let errors: Vec<Error> =
                futures_util::stream::iter(phase_steps.into_iter().map(|step| async move {
                    // A failure stops new steps; running ones finish.
                    if failed_ref.load(Ordering::SeqCst) {
                        return None;
                    }
                    let result = self
                        .run_step(step, progress_ref, previous, recorder_ref)
                        .await;
                    if result.is_err() {
                        failed_ref.store(true, Ordering::SeqCst);
                        progress_ref.failed(&step.node, None);
                    }
                    result.err()
                }))
                .buffer_unordered(jobs)
                .filter_map(|e| async move { e })
                .collect()
                .await;
            crate::timings::record(phase.name(), started.elapsed());
            if !errors.is_empty() {
                let n = errors.len();
                return Err(Error::Several {
                    summary: format!("the {phase} phase failed on {n} node{}:", if n == 1 { "" } else { "s" }),
                    failures: errors,
                    hint: Some("fix the cause, then run `kubelab lab up` again: finished steps are kept and it resumes at the failed one".into()),
                });
            }
            // `{phase}: done in x s`, in place of the live line.
            progress.finish();
        }
        Ok(())
    }

    async fn run_step(
        &self,
        step: &Step,
        progress: &PhaseProgress<'_>,
        previous: &Previous,
        recorder: &Recorder,
    ) -> Result<()> {
        let started = Instant::now();
        let node = self
            .topo
            .node(&step.node)
            .ok_or_else(|| Error::other(format!("{} is not in the lab", step.node), ""))?;
        let previous_files = previous
            .get(&step.node)
            .and_then(|m| m.get(step.phase.name()))
            .filter(|r| r.vm_id == step.vm_id)
            .map(|r| r.files.clone())
            .unwrap_or_default();
        let mut hashes: BTreeMap<String, String> = step
            .files
            .iter()
            .map(|f| (f.path.clone(), sha256_hex(f.contents.as_bytes())))
            .collect();
        let changed: Vec<&RenderedFile> = step
            .files
            .iter()
            .filter(|f| previous_files.get(&f.path) != hashes.get(&f.path))
            .collect();
        let script = script_of(step.phase)
            .ok_or_else(|| Error::other(format!("no script for the {} phase", step.phase), ""))?;
        // Release files go to a VM that does not have them yet: each is known
        // by its place in the cache, which names its digest, so a changed
        // version is sent again and an unchanged one never twice.
        let mut extra = Vec::new();
        for (remote, local) in self.uploads.get(&step.phase).into_iter().flatten() {
            let id = sha256_hex(local.to_string_lossy().as_bytes());
            if previous_files.get(remote) != Some(&id) {
                extra.push((remote.clone(), local.clone()));
            }
            hashes.insert(remote.clone(), id);
        }
        let tar = archive(&changed, &extra)?;
        let env = [
            format!("KUBELAB_NODE={}", node.name),
            format!("KUBELAB_ADDRESS={}", node.address),
            format!("KUBELAB_DOMAIN={}", self.topo.domain),
            format!("KUBELAB_PHASE={}", step.phase),
            format!("KUBELAB_ETCD_SOURCE={}", self.lab.etcd_source),
        ];
        let command = format!(
            "{} && sudo env {} bash /{REMOTE_SCRIPTS}/{script}",
            tar.extract_command(),
            env.join(" ")
        );
        progress.start(
            &node.name,
            format!(
                "{} ({} file{} sent)",
                step.phase,
                changed.len(),
                if changed.len() == 1 { "" } else { "s" }
            ),
        );
        self.transport
            .run(
                &node.name,
                &command,
                Some(Arc::new(tar)),
                format!("run the {} phase on {}", step.phase, node.name),
                &self.log_path(&node.name, step.phase),
            )
            .await?;
        // Saved before the step counts as done: a failed save fails it.
        recorder
            .record(StepDone {
                node: step.node.clone(),
                phase: step.phase,
                record: StepRecord {
                    input_hash: step.input_hash.clone(),
                    vm_id: step.vm_id.clone(),
                    files: hashes,
                    finished_unix: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0),
                },
            })
            .await?;
        progress.done(
            &node.name,
            format!(
                "{} done ({:.1} s)",
                step.phase,
                started.elapsed().as_secs_f64()
            ),
        );
        Ok(())
    }
}
