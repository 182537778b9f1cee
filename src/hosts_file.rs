//! The hypervisor's /etc/hosts: one marked block per lab
//! (`# BEGIN kubelab <lab>` ... `# END kubelab <lab>`), replaced whole, and
//! every byte outside it kept: CRLF line ends, a missing final newline,
//! comments, other labs' blocks, the user's own lines for the same names.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::Result;
use crate::tools::{Invocation, Runner};

fn begin_marker(lab: &str) -> String {
    format!("# BEGIN kubelab {lab}")
}

fn end_marker(lab: &str) -> String {
    format!("# END kubelab {lab}")
}

/// `existing` with the lab's block replaced by `block` (which ends in "\n"),
/// added at the end when absent, or removed when `block` is `None`.
pub fn with_block(existing: &str, lab: &str, block: Option<&str>) -> String {
    let crlf = existing.contains("\r\n");
    let block = block.map(|b| {
        if crlf {
            b.replace('\n', "\r\n")
        } else {
            b.to_string()
        }
    });
    let (begin, end) = (begin_marker(lab), end_marker(lab));

    // Find the block's line span: [start, stop) in bytes.
    let mut offset = 0;
    let mut start = None;
    let mut stop = None;
    for line in existing.split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        if start.is_none() && content == begin {
            start = Some(offset);
        } else if start.is_some() && content == end {
            stop = Some(offset + line.len());
            break;
        }
        offset += line.len();
    }

    match (start, stop) {
        (Some(start), Some(stop)) => {
            let before = &existing[..start];
            let after = &existing[stop..];
            let ends_at_eof_without_newline = after.is_empty() && !existing.ends_with('\n');
            match block {
                Some(block) if ends_at_eof_without_newline => {
                    // Keep the file's "no final newline" shape.
                    format!("{before}{}", block.trim_end_matches(['\n', '\r']))
                }
                Some(block) => format!("{before}{block}{after}"),
                None if ends_at_eof_without_newline => {
                    // We added the newline before the block: take it back.
                    let before = before
                        .strip_suffix("\r\n")
                        .or_else(|| before.strip_suffix('\n'))
                        .unwrap_or(before);
                    before.to_string()
                }
                None => format!("{before}{after}"),
            }
        }
        _ => match block {
            None => existing.to_string(),
            Some(block) if existing.is_empty() => block,
            Some(block) if existing.ends_with('\n') => format!("{existing}{block}"),
            Some(block) => {
                // No final newline: the block brings the separator and leaves
                // the file still without one, so removal restores it exactly.
                let eol = if crlf { "\r\n" } else { "\n" };
                format!("{existing}{eol}{}", block.trim_end_matches(['\n', '\r']))
            }
        },
    }
}

/// `block` without the names another kubelab lab's block in `existing`
/// already claims (the short `etcd0` of a lab brought up earlier), so two
/// labs never answer for the same name; a line left with no name is dropped.
/// The first lab up keeps its short names, later ones use their FQDNs.
pub fn unambiguous(block: &str, existing: &str, lab: &str) -> String {
    let mine = begin_marker(lab);
    let mut taken = std::collections::BTreeSet::new();
    let mut other = false;
    for line in existing.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(name) = line.strip_prefix("# BEGIN kubelab ") {
            other = line != mine && !name.is_empty();
        } else if line.starts_with("# END kubelab ") {
            other = false;
        } else if other && !line.starts_with('#') {
            taken.extend(line.split_whitespace().skip(1).map(str::to_string));
        }
    }
    if taken.is_empty() {
        return block.to_string();
    }
    let mut out = String::new();
    for line in block.split_inclusive('\n') {
        let content = line.trim_end_matches('\n');
        let mut fields = content.split_whitespace();
        match fields.next() {
            Some(address) if !content.starts_with('#') => {
                let names: Vec<&str> = fields.filter(|n| !taken.contains(*n)).collect();
                if !names.is_empty() {
                    out.push_str(&format!("{address}\t{}\n", names.join(" ")));
                }
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// Reads the hosts file; a missing one counts as empty.
pub fn read(path: &Path) -> Result<String> {
    match fs_err::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(err) => Err(err.into()),
    }
}

/// What `write` did, for the caller to report.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    Unchanged,
    Replaced,
    /// rename() was refused (a bind-mounted /etc/hosts): written in place
    /// after a backup.
    InPlace {
        backup: std::path::PathBuf,
    },
    WithSudo,
}

/// Sets (or removes) the lab's block in the hosts file at `path`.
pub async fn update(
    path: &Path,
    lab: &str,
    block: Option<&str>,
    scratch_dir: &Path,
    runner: &Runner,
    announce_sudo: impl Fn(&str),
) -> Result<Written> {
    let existing = read(path)?;
    let wanted = with_block(&existing, lab, block);
    if wanted == existing {
        return Ok(Written::Unchanged);
    }
    if writable(path) {
        return write_direct(path, &wanted);
    }
    announce_sudo(&format!(
        "kubelab needs sudo once to update the kubelab {lab} block in {} (so the host resolves the lab's names); nothing else in it changes",
        path.display()
    ));
    write_with_sudo(path, &wanted, scratch_dir, runner).await?;
    Ok(Written::WithSudo)
}

fn writable(path: &Path) -> bool {
    use nix::unistd::{AccessFlags, access};
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_ok = !path.exists() || access(path, AccessFlags::W_OK).is_ok();
    file_ok && access(dir, AccessFlags::W_OK).is_ok()
}

/// Atomic replace; where the file is a mount point (rename fails with EBUSY)
/// or crosses devices, back it up and write it in place.
fn write_direct(path: &Path, text: &str) -> Result<Written> {
    let mode = fs_err::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    match crate::fsutil::write_atomic(path, text.as_bytes(), mode) {
        Ok(()) => Ok(Written::Replaced),
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::ResourceBusy | std::io::ErrorKind::CrossesDevices
            ) =>
        {
            let backup = path.with_file_name(format!(
                "{}.kubelab-backup",
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
            fs_err::copy(path, &backup)?;
            let mut file = fs_err::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(path)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            Ok(Written::InPlace { backup })
        }
        Err(err) => Err(err.into()),
    }
}

/// One sudo for the whole write: copy beside the target, rename over it;
/// in place if the rename is refused (a mount point).
async fn write_with_sudo(
    path: &Path,
    text: &str,
    scratch_dir: &Path,
    runner: &Runner,
) -> Result<()> {
    fs_err::create_dir_all(scratch_dir)?;
    let staged = scratch_dir.join("hosts.new");
    crate::fsutil::write_atomic(&staged, text.as_bytes(), 0o644)?;
    let sudo = crate::tools::find("sudo", "update the hosts file as root")?;
    let script = r#"set -e; tmp="$2.kubelab-new"; cp "$1" "$tmp"; chmod 644 "$tmp"; if ! mv -f "$tmp" "$2" 2>/dev/null; then rm -f "$tmp"; cp "$2" "$2.kubelab-backup"; cat "$1" > "$2"; fi"#;
    let inv = Invocation::new(&sudo, "sudo", format!("update {}", path.display()))
        .args(["sh", "-c", script, "sh"])
        .arg(&staged)
        .arg(path)
        .hint("run again from a terminal where sudo can ask for your password, or pass --no-hosts and add the block yourself (`kubelab lab render` writes it to host/hosts.block)");
    let result = runner.run(inv).await;
    let _ = fs_err::remove_file(&staged);
    result.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::{unambiguous, with_block};

    #[test]
    fn a_later_lab_leaves_the_names_other_blocks_claim() {
        let existing = "127.0.0.1\tlocalhost\r\n# BEGIN kubelab a\r\n# Managed by kubelab\r\n192.168.56.2\tdns0.a.lan dns0\r\n192.168.56.50\tapi.lan\r\n# END kubelab a\r\n# BEGIN kubelab b\r\n192.168.57.9\tstale\r\n# END kubelab b\r\n";
        let block = "# BEGIN kubelab b\n# Managed by kubelab\n192.168.57.2\tdns0.b.lan dns0\n192.168.57.50\tapi.lan\n# END kubelab b\n";
        assert_eq!(
            unambiguous(block, existing, "b"),
            "# BEGIN kubelab b\n# Managed by kubelab\n192.168.57.2\tdns0.b.lan\n# END kubelab b\n"
        );
        // Its own old block claims nothing against it.
        let own = "# BEGIN kubelab b\n1.2.3.4\tdns0\n# END kubelab b\n";
        assert_eq!(unambiguous(block, own, "b"), block);
    }

    const BLOCK: &str = "# BEGIN kubelab lab\n192.168.56.2\tdns0.lan dns0\n# END kubelab lab\n";
    const BLOCK2: &str = "# BEGIN kubelab lab\n192.168.56.3\tdns0.lan dns0\n# END kubelab lab\n";

    fn roundtrip(original: &str) {
        let added = with_block(original, "lab", Some(BLOCK));
        assert!(added.contains("192.168.56.2"));
        assert_eq!(with_block(&added, "lab", Some(BLOCK)), added, "idempotent");
        let replaced = with_block(&added, "lab", Some(BLOCK2));
        assert!(replaced.contains("192.168.56.3") && !replaced.contains("192.168.56.2"));
        assert_eq!(
            with_block(&replaced, "lab", None),
            original,
            "removal restores every byte"
        );
    }

    #[test]
    fn plain_file() {
        roundtrip("127.0.0.1\tlocalhost\n# a comment\n::1 localhost\n");
    }

    #[test]
    fn crlf_file_keeps_crlf() {
        let original = "127.0.0.1 localhost\r\n# comment\r\n";
        roundtrip(original);
        let added = with_block(original, "lab", Some(BLOCK));
        assert!(
            !added.replace("\r\n", "").contains('\n'),
            "no bare LF: {added:?}"
        );
    }

    #[test]
    fn file_without_final_newline() {
        roundtrip("127.0.0.1 localhost");
        roundtrip("127.0.0.1 localhost\r\n::1 localhost");
    }

    #[test]
    fn empty_and_missing_file() {
        roundtrip("");
    }

    #[test]
    fn other_labs_blocks_and_users_own_lines_stay() {
        let original = "10.0.0.9 dns0.lan\n# BEGIN kubelab other\n192.168.57.2\tdns0.other\n# END kubelab other\n# BEGIN kubelab lab\nstale\n# END kubelab lab\n127.0.0.1 localhost\n";
        let replaced = with_block(original, "lab", Some(BLOCK));
        assert_eq!(
            replaced,
            "10.0.0.9 dns0.lan\n# BEGIN kubelab other\n192.168.57.2\tdns0.other\n# END kubelab other\n# BEGIN kubelab lab\n192.168.56.2\tdns0.lan dns0\n# END kubelab lab\n127.0.0.1 localhost\n"
        );
        assert_eq!(
            with_block(&replaced, "lab", None),
            "10.0.0.9 dns0.lan\n# BEGIN kubelab other\n192.168.57.2\tdns0.other\n# END kubelab other\n127.0.0.1 localhost\n"
        );
    }

    #[test]
    fn a_lab_named_like_a_prefix_of_another_is_not_confused() {
        let original = "# BEGIN kubelab lab2\nx\n# END kubelab lab2\n";
        let added = with_block(original, "lab", Some(BLOCK));
        assert!(added.starts_with(original));
        assert_eq!(with_block(&added, "lab", None), original);
    }
}
