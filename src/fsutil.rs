//! Small file-system helpers shared by every module that writes state.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temp file in the same directory
/// with `mode`, fsynced, then renamed over the target. A reader sees the old
/// file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".kubelab-tmp-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(|e| cannot_write_in(dir, path, e))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| {
        std::io::Error::new(
            e.error.kind(),
            format!("replacing {}: {}", path.display(), e.error),
        )
    })?;
    Ok(())
}

/// The error of a file that cannot be created in `dir`, naming the file
/// kubelab meant to write, not its temporary name.
fn cannot_write_in(dir: &Path, path: &Path, e: std::io::Error) -> std::io::Error {
    let os = e
        .raw_os_error()
        .map(std::io::Error::from_raw_os_error)
        .map(|os| os.to_string())
        .unwrap_or_else(|| e.kind().to_string());
    std::io::Error::new(
        e.kind(),
        format!(
            "cannot write {} (in {}): {os}",
            path.display(),
            dir.display()
        ),
    )
}

/// The file `path` names, with symlinks followed (a dangling link names the
/// file it would create), so writing it updates the link's target and keeps
/// the link.
pub fn resolve_link(path: &Path) -> std::io::Result<std::path::PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs_err::read_link(&current)?;
                current = if target.is_absolute() {
                    target
                } else {
                    current.parent().unwrap_or(Path::new(".")).join(target)
                };
            }
            Ok(_) => return Ok(current),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(current),
            Err(err) => {
                return Err(std::io::Error::new(
                    err.kind(),
                    format!("{}: {err}", current.display()),
                ));
            }
        }
    }
    Err(std::io::Error::other(format!(
        "{}: too many levels of symbolic links",
        path.display()
    )))
}

/// Replaces the contents of a file the user owns (lab.yaml, the hosts file)
/// and keeps what is theirs: a symlink is followed and its target written;
/// the mode and owner stay; a file with hard links is rewritten in place so
/// every link sees the new text. Otherwise the write is atomic as in
/// `write_atomic`. `new_mode` is for a file that does not exist yet.
pub fn write_keeping(path: &Path, bytes: &[u8], new_mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let target = resolve_link(path)?;
    let meta = match std::fs::metadata(&target) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return write_atomic(&target, bytes, new_mode);
        }
        Err(err) => {
            return Err(std::io::Error::new(
                err.kind(),
                format!("{}: {err}", target.display()),
            ));
        }
    };
    if !meta.is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file",
            target.display()
        )));
    }
    if meta.nlink() > 1 {
        return write_in_place(&target, bytes);
    }
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".kubelab-tmp-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| cannot_write_in(dir, &target, e))?;
    let same_owner = meta.uid() == nix::unistd::geteuid().as_raw()
        && meta.gid() == nix::unistd::getegid().as_raw();
    if !same_owner
        && std::os::unix::fs::fchown(tmp.as_file(), Some(meta.uid()), Some(meta.gid())).is_err()
    {
        // Only root may give a file away: keep the owner by writing in place.
        drop(tmp);
        return write_in_place(&target, bytes);
    }
    // After the chown, which clears set-id bits.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(&target).map_err(|e| {
        std::io::Error::new(
            e.error.kind(),
            format!("replacing {}: {}", target.display(), e.error),
        )
    })?;
    Ok(())
}

/// Rewrites `path`'s contents in the same inode (its links, mode and owner
/// stay), then syncs it.
fn write_in_place(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs_err::OpenOptions::new().write(true).open(path)?;
    file.write_all(bytes)?;
    file.set_len(bytes.len() as u64)?;
    file.sync_all()?;
    Ok(())
}

/// Creates `dir` and its missing parents, never through a symbolic link
/// below `base` (`base` itself and what is above it may be links: a user's
/// `~/labs -> /data/labs`). A link planted there (`.kubelab/rendered/dns0 ->
/// ~/.ssh`) is refused, naming it, so nothing is written through it.
pub fn create_dir_all_within(base: &Path, dir: &Path) -> std::io::Result<()> {
    // Inside a lab's `.kubelab/` (the default `rendered/`), from there.
    let base = kubelab_folder(base).unwrap_or(base);
    let Ok(below) = dir.strip_prefix(base) else {
        return fs_err::create_dir_all(dir);
    };
    fs_err::create_dir_all(base)?;
    let mut current = base.to_path_buf();
    for part in below.components() {
        current.push(part);
        let meta = match std::fs::symlink_metadata(&current) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match std::fs::create_dir(&current) {
                    Ok(()) => continue,
                    // Made meanwhile (two steps of one node): look again.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        std::fs::symlink_metadata(&current)?
                    }
                    Err(e) => {
                        return Err(std::io::Error::new(
                            e.kind(),
                            format!("creating {}: {e}", current.display()),
                        ));
                    }
                }
            }
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", current.display()),
                ));
            }
        };
        if meta.file_type().is_symlink() {
            return Err(std::io::Error::other(format!(
                "{} is a symbolic link, and kubelab never writes through one in its own folders: remove it (`rm {}`) and run again",
                current.display(),
                current.display()
            )));
        }
        if !meta.is_dir() {
            return Err(std::io::Error::other(format!(
                "{} is not a directory: remove it and run again",
                current.display()
            )));
        }
    }
    Ok(())
}

/// The lab's `.kubelab` folder `path` lies in, if it does.
fn kubelab_folder(path: &Path) -> Option<&Path> {
    path.ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == ".kubelab"))
}

/// Opens a log file to append to, made if missing: its folders below
/// `.kubelab/` are made without following a link (`create_dir_all_within`),
/// and the file itself is never a link followed (`O_NOFOLLOW`).
pub fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        match kubelab_folder(parent) {
            Some(base) => create_dir_all_within(base, parent)?,
            None => fs_err::create_dir_all(parent)?,
        }
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::libc::ELOOP) {
                std::io::Error::other(format!(
                    "{} is a symbolic link, and kubelab never writes through one in its own folders: remove it and run again",
                    path.display()
                ))
            } else {
                std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
            }
        })
}

#[cfg(test)]
mod tests {
    use super::write_keeping;

    /// F4: a directory link planted under `.kubelab/` (the rendered files,
    /// the logs) is refused, and nothing lands where it points.
    #[test]
    fn a_planted_directory_link_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let logs = dir.path().join("lab/.kubelab/logs");
        std::fs::create_dir_all(&logs).unwrap();
        std::os::unix::fs::symlink(&elsewhere, logs.join("dns0")).unwrap();
        let err = super::open_append(&logs.join("dns0/dns.log")).unwrap_err();
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
        let err = super::create_dir_all_within(&logs, &logs.join("dns0/etc/bind")).unwrap_err();
        assert!(err.to_string().contains("dns0 is a symbolic link"), "{err}");
        // The log file itself as a link.
        std::fs::create_dir(logs.join("etcd0")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("x"), logs.join("etcd0/etcd.log")).unwrap();
        assert!(super::open_append(&logs.join("etcd0/etcd.log")).is_err());
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        // Plain folders are made as before, and a link above `.kubelab` is fine.
        std::os::unix::fs::symlink(dir.path().join("lab"), dir.path().join("link")).unwrap();
        super::open_append(&dir.path().join("link/.kubelab/logs/worker0/w.log")).unwrap();
        assert!(logs.join("worker0/w.log").is_file());
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// D3/D4: a symlinked file has its target written and stays a link; a
    /// chain of links and a relative link too.
    #[test]
    fn a_symlink_is_followed_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        let real = dir.path().join("real/hosts");
        std::fs::write(&real, "old\n").unwrap();
        std::os::unix::fs::symlink("real/hosts", dir.path().join("middle")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("middle"), dir.path().join("hosts")).unwrap();
        write_keeping(&dir.path().join("hosts"), b"new\n", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new\n");
        for link in ["hosts", "middle"] {
            let meta = std::fs::symlink_metadata(dir.path().join(link)).unwrap();
            assert!(meta.file_type().is_symlink(), "{link} is still a link");
        }
        // A dangling link creates its target.
        std::os::unix::fs::symlink("real/new", dir.path().join("dangling")).unwrap();
        write_keeping(&dir.path().join("dangling"), b"x", 0o644).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("real/new")).unwrap(),
            "x"
        );
    }

    /// D4: the mode stays (0600 here, against the default 0644) and every
    /// hard link sees the new text.
    #[test]
    fn mode_and_hard_links_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lab.yaml");
        std::fs::write(&file, "count: 1\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_keeping(&file, b"count: 2\n", 0o644).unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o7777, 0o600);

        std::fs::hard_link(&file, dir.path().join("hardlink.yaml")).unwrap();
        let inode = std::fs::metadata(&file).unwrap().ino();
        write_keeping(&file, b"count: 3\n", 0o644).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("hardlink.yaml")).unwrap(),
            "count: 3\n"
        );
        assert_eq!(std::fs::metadata(&file).unwrap().ino(), inode);
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o7777, 0o600);
    }

    /// D4: another user's file (as root) keeps its owner.
    #[test]
    fn the_owner_is_kept() {
        if !nix::unistd::Uid::effective().is_root() {
            assert!(std::env::var_os("CI").is_none(), "CI runs as root");
            eprintln!("SKIPPED: needs root to give a file to another user");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lab.yaml");
        std::fs::write(&file, "count: 1\n").unwrap();
        std::os::unix::fs::chown(&file, Some(1234), Some(1234)).unwrap();
        write_keeping(&file, b"count: 2\n", 0o644).unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1234, 1234));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "count: 2\n");
    }
}
