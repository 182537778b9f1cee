//! The grammar of lab.yaml's names and versions. Their values reach a
//! Vagrantfile, ssh's command line, zone files and scripts on the nodes, so
//! each follows a strict grammar with nothing a shell, Ruby or ssh would read
//! specially.

/// A lab name: a DNS label of at most 40 characters.
pub fn is_lab_name(s: &str) -> bool {
    is_dns_label(s) && s.len() <= 40
}

pub(super) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

pub(super) fn is_domain(s: &str) -> bool {
    s.len() <= 200
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
        && s.split('.')
            .next_back()
            .is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()))
}

/// A Vagrant box name: `owner/box` or a local `box`, each part letters,
/// digits, '.', '_' and '-', starting with a letter or digit. It is what the
/// Vagrantfile and `vagrant box` commands take, with nothing a shell or Ruby
/// would read specially.
pub(super) fn is_box_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    s.len() <= 128
        && parts.len() <= 2
        && parts.iter().all(|p| {
            p.starts_with(|c: char| c.is_ascii_alphanumeric())
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        })
}

/// A box version or Vagrant's constraint list: comma-separated items, each an
/// optional operator (`=`, `!=`, `>`, `<`, `>=`, `<=`, `~>`) and a version
/// of dot-separated parts (digits first, then letters or digits: `1.2.3.rc1`).
pub(super) fn is_box_version(s: &str) -> bool {
    s.len() <= 100
        && s.split(',').all(|item| {
            let item = item.trim_matches(' ');
            let version = ["~>", ">=", "<=", "!=", "=", ">", "<"]
                .iter()
                .find_map(|op| item.strip_prefix(op))
                .unwrap_or(item)
                .trim_start_matches(' ');
            let mut parts = version.split('.');
            parts
                .next()
                .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
                && parts.all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
        })
}

/// A user or ssh_config Host name as ssh's destination argument: nothing ssh
/// could read as an option (a leading '-') or a second `user@`, nothing a
/// shell or an inventory would split or quote.
pub(super) fn is_ssh_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A Linux network interface name (at most 15 bytes), limited to what
/// systemd and `ip` print for real interfaces, so it is safe in a config line
/// or a shell word.
pub fn is_interface(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub(super) fn is_semver(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 6 && p.chars().all(|c| c.is_ascii_digit()))
}
