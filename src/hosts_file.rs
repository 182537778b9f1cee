//! The hypervisor's /etc/hosts: one marked block per lab
//! (`# BEGIN kubelab <lab>` ... `# END kubelab <lab>`), replaced whole, and
//! every byte outside it kept: CRLF line ends, a missing final newline,
//! comments, other labs' blocks, the user's own lines for the same names.

use std::io::Write;
use std::path::Path;

use crate::error::Result;
use crate::tools::{Invocation, Runner};

fn begin_marker(lab: &str) -> String {
    format!("# BEGIN kubelab {lab}")
}

fn end_marker(lab: &str) -> String {
    format!("# END kubelab {lab}")
}

/// The line end a file uses: CR LF when it has one, CR alone for a file of
/// CR-only lines (old Mac style), else LF. kubelab writes its block with it.
fn line_end(existing: &str) -> &'static str {
    if existing.contains("\r\n") {
        "\r\n"
    } else if existing.contains('\r') && !existing.contains('\n') {
        "\r"
    } else {
        "\n"
    }
}

/// The file's lines, each with its line end.
fn lines_of<'a>(existing: &'a str, eol: &str) -> impl Iterator<Item = &'a str> {
    let sep = if eol == "\r" { '\r' } else { '\n' };
    existing.split_inclusive(sep)
}

/// Where the lab's block is, as a byte span `[start, stop)` of whole lines,
/// or `None` when there is none. Markers that do not pair up (a BEGIN
/// without its END, an END alone, a block twice, another block's marker
/// inside this one) are refused with their line numbers and the fix, never
/// repaired: a guess would delete the user's lines.
pub fn block_span(existing: &str, lab: &str) -> Result<Option<(usize, usize)>, MarkerProblem> {
    let (begin, end) = (begin_marker(lab), end_marker(lab));
    let mut begins = Vec::new();
    let mut ends = Vec::new();
    let mut others = Vec::new();
    let mut offset = 0;
    for (i, line) in lines_of(existing, line_end(existing)).enumerate() {
        let content = line.trim();
        let number = i + 1;
        if content == begin {
            begins.push((number, offset));
        } else if content == end {
            ends.push((number, offset + line.len()));
        } else if content.starts_with("# BEGIN kubelab ") || content.starts_with("# END kubelab ") {
            others.push((number, content.to_string()));
        }
        offset += line.len();
    }
    let list = |v: &[(usize, usize)]| {
        v.iter()
            .map(|(n, _)| n.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let fix_pair = format!(
        "edit the file so it holds at most one `{begin}` line followed by one `{end}` line, with only the lab's entries between them (or delete both and the entries), then run again; kubelab never guesses which lines are its own"
    );
    match (begins.as_slice(), ends.as_slice()) {
        ([], []) => Ok(None),
        ([(b, start)], [(e, stop)]) if b < e => {
            if let Some((n, marker)) = others.iter().find(|(n, _)| n > b && n < e) {
                return Err(MarkerProblem {
                    message: format!(
                        "line {n} holds `{marker}` inside the kubelab {lab} block (lines {b}-{e}), so replacing the block would delete it"
                    ),
                    hint: format!(
                        "move the other block out of lines {b}-{e}, or delete line {n} if that block is stale, then run again"
                    ),
                });
            }
            Ok(Some((*start, *stop)))
        }
        ([(b, _)], []) => Err(MarkerProblem {
            message: format!("line {b} holds `{begin}` but no `{end}` line follows it"),
            hint: format!(
                "add a `{end}` line after the last entry of the lab's block, or delete line {b} (and the stale entries after it), then run again; kubelab never guesses where the block ends"
            ),
        }),
        ([], [(e, _)]) => Err(MarkerProblem {
            message: format!("line {e} holds `{end}` but no `{begin}` line comes before it"),
            hint: format!(
                "add a `{begin}` line before the lab's entries, or delete line {e}, then run again"
            ),
        }),
        ([(b, _)], [(e, _)]) => Err(MarkerProblem {
            message: format!("`{end}` (line {e}) comes before `{begin}` (line {b})"),
            hint: fix_pair,
        }),
        _ => Err(MarkerProblem {
            message: format!(
                "the kubelab {lab} block is marked more than once: `{begin}` on line(s) {}, `{end}` on line(s) {}",
                if begins.is_empty() {
                    "none".to_string()
                } else {
                    list(&begins)
                },
                if ends.is_empty() {
                    "none".to_string()
                } else {
                    list(&ends)
                },
            ),
            hint: fix_pair,
        }),
    }
}

/// Marker lines of a lab's block that do not pair up: what and how to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerProblem {
    pub message: String,
    pub hint: String,
}

impl MarkerProblem {
    /// As kubelab's error, naming the file (bad input: exit 2).
    pub fn into_error(self, path: &Path) -> crate::error::Error {
        crate::error::Error::usage(format!("{}: {}", path.display(), self.message), self.hint)
    }
}

/// `existing` with the lab's block replaced by `block` (which ends in "\n"),
/// added at the end when absent, or removed when `block` is `None`. The
/// block is written with the file's own line end; every other byte is kept.
pub fn with_block(existing: &str, lab: &str, block: Option<&str>) -> Result<String, MarkerProblem> {
    let eol = line_end(existing);
    let block = block.map(|b| b.replace('\n', eol));
    let ends_with_eol = existing.ends_with(eol) || (eol == "\r\n" && existing.ends_with('\n'));
    Ok(match block_span(existing, lab)? {
        Some((start, stop)) => {
            let before = &existing[..start];
            let after = &existing[stop..];
            let ends_at_eof_without_newline = after.is_empty() && !ends_with_eol;
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
                        .or_else(|| before.strip_suffix('\r'))
                        .unwrap_or(before);
                    before.to_string()
                }
                None => format!("{before}{after}"),
            }
        }
        None => match block {
            None => existing.to_string(),
            Some(block) if existing.is_empty() => block,
            Some(block) if ends_with_eol => format!("{existing}{block}"),
            Some(block) => {
                // No final newline: the block brings the separator and leaves
                // the file still without one, so removal restores it exactly.
                format!("{existing}{eol}{}", block.trim_end_matches(['\n', '\r']))
            }
        },
    })
}

/// The start of the comment line that says which lab a block belongs to:
/// the id in that lab's `.kubelab/owner.json` (`crate::owner`). `lab
/// destroy` removes a block only when the id is its own.
const OWNER_PREFIX: &str = "# kubelab lab id ";

/// `block` (BEGIN line first) with its owner line set to `id`, right after
/// the BEGIN line; an owner line it had is replaced.
pub fn with_owner(block: &str, id: &str) -> String {
    let mut out = String::new();
    for (i, line) in block.split_inclusive('\n').enumerate() {
        if line.starts_with(OWNER_PREFIX) {
            continue;
        }
        out.push_str(line);
        if i == 0 {
            out.push_str(&format!(
                "{OWNER_PREFIX}{id} (in its .kubelab/owner.json): only that lab's `kubelab lab destroy` removes this block\n"
            ));
        }
    }
    out
}

/// Whose the lab's block in `existing` is: `None` when there is no block,
/// `Some(None)` for a block without an owner line (written before kubelab
/// recorded one), `Some(Some(id))` otherwise.
pub fn block_owner(existing: &str, lab: &str) -> Result<Option<Option<String>>, MarkerProblem> {
    let Some((start, stop)) = block_span(existing, lab)? else {
        return Ok(None);
    };
    Ok(Some(existing[start..stop].lines().find_map(|line| {
        line.strip_prefix(OWNER_PREFIX)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
    })))
}

/// `block` without the names another kubelab lab's block in `existing`
/// already claims (the short `etcd0` of a lab brought up earlier), so two
/// labs never answer for the same name; a line left with no name is dropped.
/// The first lab up keeps its short names, later ones use their FQDNs.
/// The owner line of the lab's own block in `existing` is kept, so the
/// result is the block as kubelab wrote it.
pub fn unambiguous(block: &str, existing: &str, lab: &str) -> String {
    let plain = unambiguous_names(block, existing, lab);
    match block_owner(existing, lab) {
        Ok(Some(Some(id))) => with_owner(&plain, &id),
        _ => plain,
    }
}

fn unambiguous_names(block: &str, existing: &str, lab: &str) -> String {
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

const OTHER_FILE: &str = "or pass --no-hosts (the block is in host/hosts.block of `kubelab lab render`), or set KUBELAB_HOSTS_FILE to another file";

/// Reads the hosts file; a missing one counts as empty. A directory or a
/// file that is not UTF-8 is refused with where and how to fix it.
pub fn read(path: &Path) -> Result<String> {
    // Before opening it: reading a FIFO would wait for a writer for ever.
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
        && !meta.is_dir()
    {
        use std::os::unix::fs::FileTypeExt;
        let kind = meta.file_type();
        let what = if kind.is_fifo() {
            "a named pipe (FIFO)"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        return Err(crate::error::Error::other(
            format!(
                "the hosts file {} is {what}, not a regular file",
                path.display()
            ),
            format!("point KUBELAB_HOSTS_FILE at a file, {OTHER_FILE}"),
        ));
    }
    let bytes = match fs_err::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(_) if path.is_dir() => {
            return Err(crate::error::Error::other(
                format!("the hosts file {} is a directory", path.display()),
                format!("point KUBELAB_HOSTS_FILE at a file, {OTHER_FILE}"),
            ));
        }
        // fs_err's error wraps the OS error: ask the OS again.
        Err(_)
            if std::fs::metadata(path).err().and_then(|e| e.raw_os_error())
                == Some(nix::libc::ELOOP) =>
        {
            return Err(crate::error::Error::other(
                format!(
                    "the hosts file {} is a symbolic link that leads back to itself (a loop)",
                    path.display()
                ),
                format!(
                    "point the link at the real file (`ls -l {}` shows where it leads), {OTHER_FILE}",
                    path.display()
                ),
            ));
        }
        Err(err) => {
            return Err(crate::error::Error::other(
                format!("could not read the hosts file: {err}"),
                format!("run as a user who may read it, {OTHER_FILE}"),
            ));
        }
    };
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        crate::error::Error::other(
            format!(
                "the hosts file {} is not UTF-8 text: byte {} (line {line}) is 0x{:02x}",
                path.display(),
                at + 1,
                e.as_bytes()[at]
            ),
            format!("kubelab keeps every byte outside its block but reads the file as text: write that line in UTF-8, {OTHER_FILE}"),
        )
    })
}

/// Everything `update` needs, checked before anything else happens (before
/// a VM boots): the file reads as text, the lab's markers pair up, and it
/// can be written, directly or with sudo.
pub fn preflight(path: &Path, lab: &str) -> Result<()> {
    let existing = read(path)?;
    block_span(&existing, lab).map_err(|p| p.into_error(path))?;
    let target = crate::fsutil::resolve_link(path)?;
    if writable(&target) {
        return Ok(());
    }
    if nix::unistd::Uid::effective().is_root() {
        return Err(crate::error::Error::other(
            format!(
                "the hosts file {} cannot be written, even as root (read-only, or its folder is missing)",
                path.display()
            ),
            format!("make it writable, {OTHER_FILE}"),
        ));
    }
    crate::tools::find("sudo", "update the hosts file as root").map_err(|_| {
        crate::error::Error::other(
            format!(
                "the hosts file {} is not writable by you and `sudo` was not found on PATH",
                path.display()
            ),
            format!("install sudo, {OTHER_FILE}"),
        )
    })?;
    Ok(())
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
/// `scratch_dir` is the lab's `.kubelab/`: a block written carries the id
/// of its `owner.json`, so only this lab's destroy removes it.
pub async fn update(
    path: &Path,
    lab: &str,
    block: Option<&str>,
    scratch_dir: &Path,
    runner: &Runner,
    announce_sudo: impl Fn(&str),
) -> Result<Written> {
    let owned = match (block, crate::lab::owner::Owner::load(scratch_dir)?) {
        (Some(block), Some(owner)) => Some(with_owner(block, &owner.id)),
        (block, _) => block.map(str::to_string),
    };
    let block = owned.as_deref();
    let existing = read(path)?;
    let wanted = with_block(&existing, lab, block).map_err(|p| p.into_error(path))?;
    if wanted == existing {
        return Ok(Written::Unchanged);
    }
    // A symlinked hosts file (NixOS, config management): write its target
    // and keep the link.
    let path = &crate::fsutil::resolve_link(path)?;
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
    match crate::fsutil::write_keeping(path, text.as_bytes(), 0o644) {
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
    // A hard-linked file is rewritten in place (a rename would split the
    // links); else a copy with the file's own mode and owner is renamed over
    // it, or, where the rename is refused (a mount point), written in place
    // after a backup.
    let script = r#"set -e; f="$2"; if [ -e "$f" ] && [ "$(stat -c %h "$f")" -gt 1 ]; then cat "$1" > "$f"; exit 0; fi; tmp="$f.kubelab-new"; cp "$1" "$tmp"; if [ -e "$f" ]; then chmod --reference="$f" "$tmp"; chown --reference="$f" "$tmp"; else chmod 644 "$tmp"; fi; if ! mv -f "$tmp" "$f" 2>/dev/null; then rm -f "$tmp"; cp "$f" "$f.kubelab-backup"; cat "$1" > "$f"; fi"#;
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
    use super::{block_owner, unambiguous, with_block, with_owner};

    /// A hosts file that is a symlink loop is named as that, with the fix;
    /// never "run as a user who may read it".
    #[test]
    fn a_symlink_loop_is_named_as_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let err = super::read(&a).unwrap_err();
        assert!(err.to_string().contains("leads back to itself"), "{err}");
        let hint = err.hint().unwrap();
        assert!(hint.contains("point the link at the real file"), "{hint}");
        assert!(!hint.contains("run as a user"), "{hint}");
    }

    /// A FIFO as the hosts file is refused before it is opened (reading it
    /// would wait for a writer for ever).
    #[test]
    fn a_fifo_as_the_hosts_file_is_refused_without_opening_it() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("hosts");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let err = super::read(&fifo).unwrap_err();
        assert!(
            err.to_string()
                .contains("is a named pipe (FIFO), not a regular file"),
            "{err}"
        );
        assert!(super::preflight(&fifo, "lab").is_err());
    }

    /// F3: the block names the lab that wrote it, and the block a plan
    /// makes compares equal to the written one (verify's check).
    #[test]
    fn a_block_carries_its_owner_and_the_plan_keeps_it() {
        let written = with_owner(BLOCK, "abc123");
        assert!(
            written.starts_with("# BEGIN kubelab lab\n# kubelab lab id abc123 "),
            "{written}"
        );
        assert_eq!(with_owner(&written, "def456").matches("lab id").count(), 1);
        let file = with_block("127.0.0.1 localhost\n", "lab", Some(&written)).unwrap();
        assert_eq!(
            block_owner(&file, "lab").unwrap(),
            Some(Some("abc123".into()))
        );
        assert_eq!(block_owner(&file, "other").unwrap(), None);
        let legacy = with_block("", "lab", Some(BLOCK)).unwrap();
        assert_eq!(block_owner(&legacy, "lab").unwrap(), Some(None));
        assert_eq!(unambiguous(BLOCK, &file, "lab"), written);
        assert_eq!(unambiguous(BLOCK, &legacy, "lab"), BLOCK);
    }

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
        let added = with_block(original, "lab", Some(BLOCK)).unwrap();
        assert!(added.contains("192.168.56.2"));
        assert_eq!(
            with_block(&added, "lab", Some(BLOCK)).unwrap(),
            added,
            "idempotent"
        );
        let replaced = with_block(&added, "lab", Some(BLOCK2)).unwrap();
        assert!(replaced.contains("192.168.56.3") && !replaced.contains("192.168.56.2"));
        assert_eq!(
            with_block(&replaced, "lab", None).unwrap(),
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
        let added = with_block(original, "lab", Some(BLOCK)).unwrap();
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
        let replaced = with_block(original, "lab", Some(BLOCK)).unwrap();
        assert_eq!(
            replaced,
            "10.0.0.9 dns0.lan\n# BEGIN kubelab other\n192.168.57.2\tdns0.other\n# END kubelab other\n# BEGIN kubelab lab\n192.168.56.2\tdns0.lan dns0\n# END kubelab lab\n127.0.0.1 localhost\n"
        );
        assert_eq!(
            with_block(&replaced, "lab", None).unwrap(),
            "10.0.0.9 dns0.lan\n# BEGIN kubelab other\n192.168.57.2\tdns0.other\n# END kubelab other\n127.0.0.1 localhost\n"
        );
    }

    #[test]
    fn a_lab_named_like_a_prefix_of_another_is_not_confused() {
        let original = "# BEGIN kubelab lab2\nx\n# END kubelab lab2\n";
        let added = with_block(original, "lab", Some(BLOCK)).unwrap();
        assert!(added.starts_with(original));
        assert_eq!(with_block(&added, "lab", None).unwrap(), original);
    }

    #[test]
    fn cr_only_file_keeps_every_byte() {
        // D10: lines ended by CR alone; the final CR stays, the block uses CR.
        let original = "127.0.0.1 localhost\r::1 localhost\r";
        roundtrip(original);
        let added = with_block(original, "lab", Some(BLOCK)).unwrap();
        assert!(!added.contains('\n'), "{added:?}");
        assert!(added.starts_with(original), "{added:?}");
        roundtrip("127.0.0.1 localhost\r::1 localhost");
    }

    /// D1: markers that do not pair up are refused with their line numbers,
    /// never "repaired" by deleting what follows them.
    #[test]
    fn unpaired_or_doubled_markers_are_refused_with_line_numbers() {
        let orphan = "127.0.0.1 localhost\n# BEGIN kubelab lab\n10.9.9.9\tstale.lan\n192.168.1.5\tmyprinter\n";
        let err = with_block(orphan, "lab", Some(BLOCK)).unwrap_err();
        assert_eq!(
            err.message,
            "line 2 holds `# BEGIN kubelab lab` but no `# END kubelab lab` line follows it"
        );
        assert!(
            err.hint.contains("add a `# END kubelab lab` line")
                && err.hint.contains("delete line 2"),
            "{}",
            err.hint
        );
        assert!(
            with_block(orphan, "lab", None).is_err(),
            "removal refuses too"
        );

        // What the old code made of it: an orphan, then a full block after.
        let doubled = format!("{orphan}{BLOCK}");
        let err = with_block(&doubled, "lab", Some(BLOCK)).unwrap_err();
        assert!(
            err.message.contains("line(s) 2, 5") && err.message.contains("line(s) 7"),
            "{}",
            err.message
        );

        let end_only = "a\n# END kubelab lab\nb\n";
        let err = with_block(end_only, "lab", None).unwrap_err();
        assert!(
            err.message
                .starts_with("line 2 holds `# END kubelab lab` but no"),
            "{}",
            err.message
        );

        let reversed = "# END kubelab lab\nx\n# BEGIN kubelab lab\n";
        assert!(
            with_block(reversed, "lab", None)
                .unwrap_err()
                .message
                .contains("(line 1) comes before")
        );

        let nested = "# BEGIN kubelab lab\n1.1.1.1 a\n# BEGIN kubelab other\n2.2.2.2 b\n# END kubelab other\n# END kubelab lab\n";
        let err = with_block(nested, "lab", Some(BLOCK)).unwrap_err();
        assert!(
            err.message.starts_with(
                "line 3 holds `# BEGIN kubelab other` inside the kubelab lab block (lines 1-6)"
            ),
            "{}",
            err.message
        );

        // Another lab's orphan marker outside ours is not ours to judge.
        let other = "# BEGIN kubelab other\nx\n";
        assert_eq!(with_block(other, "lab", None).unwrap(), other);
    }
}
