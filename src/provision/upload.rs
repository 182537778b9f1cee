//! What a step sends to its node: one tar stream of its files, release
//! files and the scripts, fed to ssh while it reads, and what `lab destroy`
//! runs on a static lab's node.

use super::*;

/// What one step sends to its node: a tar stream written while ssh reads
/// it. Rendered files and scripts are small and come from memory; release
/// files come from the cache as they are sent (a worker's releases are
/// some 250 MB, a controller's 300 MB: a copy of each per node in memory,
/// with 8 nodes at once, was gigabytes).
pub struct Upload {
    entries: Vec<(String, u32, Source)>,
    /// Written last, to [`UPLOAD_MARK`]: the node runs nothing unless the
    /// stream arrived whole (tar takes an archive cut between two entries
    /// as complete, and a stream can be cut by a release file that cannot
    /// be read half-way, or by the network).
    id: String,
}

/// Where the node finds the id of the last upload it extracted.
const UPLOAD_MARK: &str = "var/lib/kubelab/upload-complete";

impl Upload {
    /// The shell line that extracts the upload on the node and fails unless
    /// all of it arrived; what the step runs follows it with `&&`.
    pub fn extract_command(&self) -> String {
        self.extract_line("sudo ", "/")
    }

    pub(super) fn extract_line(&self, sudo: &str, root: &str) -> String {
        let root = root.trim_end_matches('/');
        format!(
            "{sudo}rm -f '{root}/{UPLOAD_MARK}' && {sudo}tar -x -p -f - -C '{root}/' && {{ test \"$(cat '{root}/{UPLOAD_MARK}' 2>/dev/null)\" = {id} || {{ echo 'kubelab: the upload arrived incomplete; nothing was run' >&2; exit 1; }}; }}",
            id = self.id
        )
    }
}

/// A new id for each upload: the time, the process and a counter.
fn upload_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    sha256_hex(format!("{nanos}-{}-{n}", std::process::id()).as_bytes())[..16].to_string()
}

enum Source {
    Bytes(Vec<u8>),
    File(std::path::PathBuf),
}

impl crate::tools::Feed for Upload {
    fn write_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let mut builder = tar::Builder::new(out);
        let mtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        for (path, mode, source) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_mode(*mode);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(mtime);
            match source {
                Source::Bytes(bytes) => {
                    header.set_size(bytes.len() as u64);
                    header.set_cksum();
                    builder.append_data(&mut header, path, bytes.as_slice())?;
                }
                Source::File(local) => {
                    let file = fs_err::File::open(local)?;
                    header.set_size(file.metadata()?.len());
                    header.set_cksum();
                    builder.append_data(&mut header, path, file)?;
                }
            }
        }
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        header.set_size(self.id.len() as u64);
        header.set_cksum();
        builder.append_data(&mut header, UPLOAD_MARK, self.id.as_bytes())?;
        builder.finish()
    }
}

/// The upload of `files` at their absolute paths, the release files `extra`
/// names (path on the node, file in the cache), and the scripts. A release
/// file that is not in the cache is an error here, before any connection.
pub(super) fn archive(
    files: &[&RenderedFile],
    extra: &[(String, std::path::PathBuf)],
) -> Result<Upload> {
    let mut entries = Vec::new();
    for f in files {
        entries.push((
            f.path.clone(),
            f.mode,
            Source::Bytes(f.contents.as_bytes().to_vec()),
        ));
    }
    for (path, local) in extra {
        fs_err::metadata(local)?;
        entries.push((path.clone(), 0o644, Source::File(local.clone())));
    }
    for (name, text) in SCRIPTS {
        entries.push((
            format!("{REMOTE_SCRIPTS}/{name}"),
            0o755,
            Source::Bytes(text.as_bytes().to_vec()),
        ));
    }
    Ok(Upload {
        entries,
        id: upload_id(),
    })
}

/// What `lab destroy` runs on a static lab's node: the role scripts (sent
/// again, so the current ones run) with `uninstall`, in reverse phase order,
/// then the removal of every file the state says kubelab placed there.
/// Returns the shell line and the tar stream to feed it.
pub fn uninstall(lab: &Lab, node: &Node, state: &State) -> Result<(String, Upload)> {
    let env = [
        format!("KUBELAB_NODE={}", node.name),
        format!("KUBELAB_ADDRESS={}", node.address),
        format!("KUBELAB_DOMAIN={}", lab.network.domain),
        "KUBELAB_PHASE=uninstall".to_string(),
    ]
    .join(" ");
    let upload = archive(&[], &[])?;
    let mut lines = vec![upload.extract_command()];
    for phase in ENGINE_PHASES.iter().rev() {
        if let Some(script) = script_of(*phase).filter(|_| participates(*phase, node)) {
            lines.push(format!(
                "sudo env {env} bash /{REMOTE_SCRIPTS}/{script} uninstall"
            ));
        }
    }
    let placed: std::collections::BTreeSet<&String> = state
        .steps
        .get(&node.name)
        .into_iter()
        .flat_map(|steps| steps.values())
        .flat_map(|record| record.files.keys())
        .collect();
    for path in placed {
        lines.push(format!("sudo rm -f '/{}'", path.replace('\'', "")));
    }
    lines.push("sudo rm -rf /var/lib/kubelab /etc/kubelab".into());
    lines.push("sudo systemctl daemon-reload".into());
    Ok((lines.join(" && "), upload))
}
