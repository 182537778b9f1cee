//! Syntax, types and unknown keys: serde's first error as a [`Problem`] in
//! the user's words, with its field path, line and column, and the closest
//! known key for a typo.

use super::{LabFile, Problem};

/// Syntax, types and unknown keys: the first such problem, with its field path.
pub fn parse_structure(text: &str) -> Result<LabFile, Problem> {
    let meaningful = text
        .lines()
        .map(str::trim)
        .any(|l| !l.is_empty() && !l.starts_with('#') && l != "---");
    if !meaningful {
        return Err(Problem::new(
            "",
            "the file is empty",
            "run `kubelab init --force` to write the commented default lab, or delete the file to use the built-in one",
        ));
    }
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let result: Result<LabFile, _> = serde_path_to_error::deserialize(deserializer);
    result.map_err(|err| structural_problem(&err))
}

fn structural_problem(err: &serde_path_to_error::Error<serde_yaml::Error>) -> Problem {
    let path = err.path().to_string();
    let inner = err.inner();
    let location = inner
        .location()
        .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
        .unwrap_or_default();
    let raw = inner.to_string();
    // serde_yaml prefixes the path and appends " at line N column M"; we print
    // both our own way.
    let message = raw.find(" at line ").map_or(raw.as_str(), |i| &raw[..i]);
    let message = plain_words(
        message
            .strip_prefix(&format!("{path}: "))
            .unwrap_or(message),
    );
    // A path is only meaningful when the parser got as far as a value.
    let syntax =
        path == "." || path.contains('?') || inner.location().is_some() && !is_data_error(&message);
    let path = if path == "." || path.contains('?') {
        String::new()
    } else {
        path
    };

    if let Some(unknown) = between(&message, "unknown field `", "`") {
        let expected = expected_fields(&message);
        let full_path = if path.is_empty() {
            unknown.to_string()
        } else {
            // serde_path_to_error already names the unknown key as the last segment.
            path.clone()
        };
        let hint = match closest(unknown, &expected) {
            _ if unknown == "<<" => format!(
                "YAML merge keys (`<<: *anchor`) are not supported: write the values out; known keys here: {}",
                expected.join(", ")
            ),
            Some(best) => format!(
                "did you mean `{best}`? known keys here: {}",
                expected.join(", ")
            ),
            None => format!("known keys here: {}", expected.join(", ")),
        };
        return Problem::new(full_path, format!("unknown key{location}"), hint);
    }
    if let Some(variant) = between(&message, "unknown variant `", "`") {
        let expected = expected_fields(&message);
        return Problem::new(
            path,
            format!("`{variant}` is not a known value{location}"),
            format!("use one of: {}", expected.join(", ")),
        );
    }
    if let Some(field) = between(&message, "missing field `", "`") {
        return Problem::new(
            path,
            format!("`{field}` is missing{location}"),
            format!(
                "add `{field}:` here; the commented default lab.yaml and README show each setting"
            ),
        );
    }
    if message.starts_with("invalid value: integer") {
        return Problem::new(
            path,
            format!("{message}{location}"),
            "use a number in that range; the commented default lab.yaml (`kubelab init`) shows usual values",
        );
    }
    if message.starts_with("duplicate field") {
        return Problem::new(
            path,
            format!("{message}{location}"),
            "each key may appear once in its mapping: delete one of the two lines",
        );
    }
    if message.contains("unknown anchor") {
        return Problem::new(
            path,
            format!("{message}{location}"),
            "define the anchor (`&name`) before using it (`*name`), or write the value out",
        );
    }
    if message.starts_with("invalid type") {
        return Problem::new(
            path,
            format!("{message}{location}"),
            "see the commented default lab.yaml (`kubelab init`) for the type of each setting",
        );
    }
    if syntax {
        let hint = if message.contains("more than one document") {
            "lab.yaml is one YAML document: remove the `---` (or `...`) line and what follows, or merge the documents"
        } else if message.contains("cannot start any token") {
            "YAML indents with spaces, never TABs: replace the TAB at that line with spaces (and check the `key: value` pairs around it)"
        } else {
            "check the indentation and the `key: value` pairs around that line"
        };
        return Problem::new("", format!("YAML syntax error{location}: {message}"), hint);
    }
    let hint = if message.contains("IP") || message.contains("address") {
        "kubelab labs are IPv4 only: write an IPv4 address like 192.168.56.10, or a network like 192.168.56.0/24"
    } else {
        ""
    };
    Problem::new(path, format!("{message}{location}"), hint)
}

/// serde's message in the user's words: no Rust type names.
fn plain_words(message: &str) -> String {
    let mut m = message.to_string();
    for (rust, words) in [
        (
            "expected struct LabFile",
            "expected the lab's settings (`key: value` lines such as `name: mylab`)",
        ),
        (
            "expected struct NodesFile",
            "expected the roles' settings (such as `worker:` with `count: 3` under it)",
        ),
        (
            "expected struct RoleFile",
            "expected a role's settings (such as `count: 3`)",
        ),
        (
            "expected struct LbFile",
            "expected the load balancers' settings (such as `count: 2`)",
        ),
        (
            "expected struct NetworkFile",
            "expected the network settings (such as `cidr: 192.168.56.0/24`)",
        ),
        (
            "expected struct BoxFile",
            "expected the box settings (such as `name: bento/ubuntu-24.04`)",
        ),
        (
            "expected struct VersionsFile",
            "expected component versions (such as `kubernetes: 1.32.3`)",
        ),
        (
            "expected struct ArtifactsFile",
            "expected artifact sources (such as `etcd: upstream`)",
        ),
        (
            "expected struct CertificatesFile",
            "expected certificate settings (such as `validity_days: 365`)",
        ),
        (
            "expected struct WorkloadFile",
            "expected workload settings (such as `nginx_replicas: 3`)",
        ),
        (
            "expected struct HostFile",
            "expected a host's settings (such as `role: worker` and `address:`)",
        ),
        (
            "expected a YAML tag starting with '!'",
            "expected one word (such as `virtualbox`)",
        ),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u64", "expected a whole number"),
        (" as u128", ""),
        ("unit value", "nothing (an empty value)"),
    ] {
        m = m.replace(rust, words);
    }
    m
}

/// Errors about a value's content, as opposed to the YAML's shape.
fn is_data_error(message: &str) -> bool {
    ["invalid", "unknown", "missing", "expected", "duplicate"]
        .iter()
        .any(|w| message.contains(w))
        && !message.contains("did not find expected")
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let len = s[from..].find(end)?;
    Some(&s[from..from + len])
}

/// The `expected one of `a`, `b`` list in a serde message.
fn expected_fields(message: &str) -> Vec<String> {
    let Some(i) = message.find("expected") else {
        return Vec::new();
    };
    message[i..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The closest candidate by edit distance (a swap of two letters counts
/// one), if it is close enough to be a typo: one edit per three letters of
/// the candidate, at least one (`bogus` is not a typo of `nodes`).
pub fn closest<'a>(word: &str, candidates: &'a [String]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::osa_distance(word, c), c))
        .filter(|(d, c)| *d <= 1.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}
