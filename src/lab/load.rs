//! Reading a lab: the file, its structure, the defaults (config), then the
//! rules over the concrete nodes (`validate`, over the [`Topology`]), every
//! problem at once. The one place that joins config and topology.

use std::path::Path;

use super::validate;
use crate::config::{
    ConfigError, DEFAULT_LAB_YAML, Lab, LabFile, LabSource, Problem, parse_structure,
};
use crate::topology::Topology;

/// Reads and validates a lab file.
pub fn load(path: &Path) -> Result<Lab, ConfigError> {
    let text = match fs_err::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::Missing {
                path: path.to_path_buf(),
            });
        }
        Err(err) => {
            return Err(ConfigError::Unreadable {
                path: path.to_path_buf(),
                source: err,
            });
        }
    };
    parse(&text, LabSource::File(path.to_path_buf()))
}

/// The built-in default lab.
pub fn builtin() -> Lab {
    parse(DEFAULT_LAB_YAML, LabSource::BuiltIn)
        .unwrap_or_else(|err| panic!("the built-in lab.yaml is invalid (a kubelab bug): {err}"))
}

/// Parses and validates lab file text.
pub fn parse(text: &str, source: LabSource) -> Result<Lab, ConfigError> {
    // CR-only line ends (old Mac style) are line breaks in YAML, but not to
    // the parser kubelab uses: read them as LF (the file is not changed).
    let cr_only;
    let text = if text.contains('\r') && !text.contains('\n') {
        cr_only = text.replace('\r', "\n");
        cr_only.as_str()
    } else {
        text
    };
    let source_name = source.to_string();
    let invalid = |problems: Vec<Problem>| ConfigError::Invalid {
        source_name: source_name.clone(),
        problems,
    };
    let file = parse_structure(text).map_err(|p| invalid(vec![p]))?;
    resolve(&file, source.clone()).map_err(invalid)
}

/// Applies defaults and checks every rule, returning all problems at once:
/// the fields' own rules, then those over the concrete nodes that
/// [`Topology::new`] derives from the resolved lab.
pub fn resolve(file: &LabFile, source: LabSource) -> Result<Lab, Vec<Problem>> {
    let crate::config::resolve::Resolved {
        mut lab,
        mut problems,
        later,
    } = crate::config::resolve::resolve(file, source);
    let checked = validate::nodes(&lab, &Topology::new(&lab));
    problems.extend(checked.problems);
    problems.extend(later);
    dedup_problems(&mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    lab.warnings.extend(checked.warnings);
    Ok(lab)
}

/// One problem said once: two rules may find the same (`box.name` is both
/// unusable and ungrammatical when it is empty).
fn dedup_problems(problems: &mut Vec<Problem>) {
    let mut seen = std::collections::HashSet::new();
    problems.retain(|p| seen.insert((p.path.clone(), p.message.clone())));
}
