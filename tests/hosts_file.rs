//! The hosts-file cases that need root to set up: a bind-mounted hosts file
//! (rename fails with EBUSY) and a hosts file kubelab may not write (one sudo).
//! CI runs as root; elsewhere these print SKIPPED.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use support::Test;

const ORIGINAL: &str = "127.0.0.1 localhost\n# keep me\n10.9.9.9 dns0.lan";

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

fn skip_unless_root() -> bool {
    if is_root() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI runs as root: these tests must not skip there"
    );
    eprintln!("SKIPPED: needs root (a private mount namespace, and another user to run as)");
    true
}

/// /etc/hosts inside containers is often a bind mount: rename() onto it fails
/// with EBUSY, so kubelab backs it up and writes it in place.
#[test]
fn a_bind_mounted_hosts_file_is_written_in_place_with_a_backup() {
    if skip_unless_root() {
        return;
    }
    let test = Test::new()
        .write("lab.yaml", "name: t\n")
        .write("etc-hosts", "placeholder\n")
        .write("mounted-hosts", ORIGINAL)
        .standins()
        .args(&["lab", "up", "--until", "machines"]);
    let target = test.path().join("etc-hosts");
    let source = test.path().join("mounted-hosts");
    let ran = test.run_wrapped(&[
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        r#"dst=$1; shift; mount --bind "$0" "$dst" && exec "$@""#,
        source.to_str().unwrap(),
        target.to_str().unwrap(),
    ]);
    assert!(
        ran.stderr.contains("in place: it is a mount point"),
        "{}",
        ran.stderr
    );
    // The write went through the mount into the mounted file.
    let written = std::fs::read_to_string(&source).unwrap();
    assert!(
        written.starts_with(&format!("{ORIGINAL}\n# BEGIN kubelab t\n")),
        "{written:?}"
    );
    assert!(
        written.ends_with("# END kubelab t"),
        "no final newline, like the original: {written:?}"
    );
    assert_eq!(
        std::fs::read_to_string(test.path().join("etc-hosts.kubelab-backup")).unwrap(),
        ORIGINAL
    );
    // Outside the mount namespace the placeholder is untouched.
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "placeholder\n");
}

/// Not root: kubelab stages the new file and asks sudo once for the whole
/// write, saying why. The stand-in sudo records the call; the test then runs
/// that exact command as root to prove it writes the file right.
#[test]
fn a_hosts_file_the_user_cannot_write_takes_exactly_one_sudo() {
    if skip_unless_root() {
        return;
    }
    let test = Test::new().write("lab.yaml", "name: t\n").standins();
    let hosts_dir = test.path().join("root-owned");
    std::fs::create_dir(&hosts_dir).unwrap();
    let hosts = hosts_dir.join("hosts");
    std::fs::write(&hosts, ORIGINAL).unwrap();
    std::fs::set_permissions(&hosts, std::fs::Permissions::from_mode(0o644)).unwrap();
    let staged_copy = test.path().join("staged-copy");
    // The lab directory belongs to the unprivileged user; the hosts file not.
    let chown = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(test.path())
        .status()
        .unwrap();
    assert!(chown.success());
    nix::unistd::chown(&hosts_dir, Some(0.into()), Some(0.into())).unwrap();
    nix::unistd::chown(&hosts, Some(0.into()), Some(0.into())).unwrap();
    std::fs::set_permissions(test.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    let home = test.path().display().to_string();
    let test = test
        .env("KUBELAB_HOSTS_FILE", hosts.to_str().unwrap())
        .env("STANDIN_SUDO_COPY", staged_copy.to_str().unwrap())
        .env("HOME", &home)
        .args(&["lab", "up", "--until", "machines"]);
    let ran = test.run_wrapped(&[
        "setpriv",
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "--",
    ]);
    assert!(ran.stderr.contains("needs sudo once"), "{}", ran.stderr);
    let sudo_calls: Vec<String> = test
        .started()
        .into_iter()
        .filter(|c| c.starts_with("sudo "))
        .collect();
    assert_eq!(sudo_calls.len(), 1, "{sudo_calls:#?}");
    // Nothing was written without sudo, and nothing is left staged.
    assert_eq!(std::fs::read_to_string(&hosts).unwrap(), ORIGINAL);
    assert!(!test.path().join(".kubelab/hosts.new").exists());

    // Replay the recorded command as root on a copy: it must produce the
    // staged content atomically and keep the file's mode.
    let staged = std::fs::read_to_string(&staged_copy).unwrap();
    assert!(
        staged.starts_with(&format!("{ORIGINAL}\n# BEGIN kubelab t\n")),
        "{staged:?}"
    );
    let script = sudo_calls[0]
        .strip_prefix("sudo sh -c ")
        .and_then(|rest| rest.rsplit_once(" sh "))
        .map(|(script, _)| script.to_string())
        .expect("sudo sh -c SCRIPT sh STAGED TARGET");
    let replay_target = test.path().join("replay-hosts");
    std::fs::write(&replay_target, ORIGINAL).unwrap();
    let status = Command::new("sh")
        .args(["-c", &script, "sh"])
        .arg(&staged_copy)
        .arg(&replay_target)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(&replay_target).unwrap(), staged);
    assert_eq!(
        std::fs::metadata(&replay_target).unwrap().mode() & 0o777,
        0o644
    );
}
