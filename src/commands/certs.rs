//! `kubelab lab certs`: the lab's certificates, each verified against its CA.

use serde::Serialize;

use crate::cli::JsonArgs;
use crate::error::{Error, Result};
use crate::lab::LoadedLab;
use crate::pki;
use crate::printer::{self, Printer, SCHEMA_VERSION};

#[derive(Serialize)]
struct CertsJson {
    schema_version: u32,
    pki_dir: String,
    certificates: Vec<CertRow>,
}

#[derive(Serialize, Clone)]
struct CertRow {
    name: String,
    /// `cluster` or `etcd`: the CA that signs it (itself, for a CA).
    authority: &'static str,
    /// False when the topology needs it but `lab render` has not signed it.
    present: bool,
    #[serde(flatten)]
    info: Option<pki::CertInfo>,
    /// What is wrong with it (not signed by its CA, a key that is not its
    /// key, a file that does not parse), each naming the file; empty when
    /// it is sound.
    problems: Vec<String>,
}

pub(super) fn certs(loaded: &LoadedLab, args: &JsonArgs, printer: &Printer) -> Result<()> {
    let dir = loaded.state_dir().join("pki");
    let authority_name = |a: pki::Authority| match a {
        pki::Authority::Cluster => "cluster",
        pki::Authority::Etcd => "etcd",
        pki::Authority::FrontProxy => "front-proxy",
    };
    let cas = [
        pki::Authority::Cluster,
        pki::Authority::Etcd,
        pki::Authority::FrontProxy,
    ];
    let mut wanted: Vec<(String, pki::Authority)> =
        cas.iter().map(|a| (a.ca_stem().to_string(), *a)).collect();
    wanted.extend(
        pki::specs(&loaded.lab, &loaded.topo)
            .into_iter()
            .map(|s| (s.name, s.authority)),
    );
    let mut rows = Vec::new();
    for (name, authority_id) in wanted {
        let authority = authority_name(authority_id);
        let path = dir.join(format!("{name}.pem"));
        let ca_stem = authority_id.ca_stem();
        let present = path.exists() || path.is_symlink();
        let problems = if present {
            pki::check(&dir, &name, ca_stem)
        } else {
            Vec::new()
        };
        let info = match fs_err::read_to_string(&path) {
            Ok(pem) => pki::inspect(&pem).ok(),
            Err(_) => None,
        };
        rows.push(CertRow {
            name,
            authority,
            present,
            info,
            problems,
        });
    }
    if rows.iter().all(|r| !r.present) && !args.json {
        return Err(Error::other(
            format!("no certificates in {} yet", dir.display()),
            "`kubelab lab render` signs the lab's PKI",
        ));
    }
    let broken: Vec<String> = rows
        .iter()
        .flat_map(|r| r.problems.iter().map(|p| format!("- {p}")))
        .collect();
    let verdict = || {
        if broken.is_empty() {
            return Ok(());
        }
        Err(Error::other(
            format!(
                "{} certificate file(s) in {} are broken:\n{}",
                rows.iter().filter(|r| !r.problems.is_empty()).count(),
                dir.display(),
                broken.join("\n")
            ),
            "delete the broken certificate and its key (`<name>.pem`, `<name>-key.pem`; for a CA, everything it signed) and run `kubelab lab render` to sign them again, then `kubelab lab up` to put them on the nodes",
        ))
    };
    if args.json {
        printer.json(&CertsJson {
            schema_version: SCHEMA_VERSION,
            pki_dir: dir.display().to_string(),
            certificates: rows.iter().map(|r| CertRow { ..r.clone() }).collect(),
        })?;
        return verdict();
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| match &r.info {
            Some(_) if !r.problems.is_empty() => vec![
                r.name.clone(),
                r.authority.to_string(),
                format!("BROKEN: {}", r.problems.join("; ")),
                "-".to_string(),
                "-".to_string(),
            ],
            Some(info) => vec![
                r.name.clone(),
                r.authority.to_string(),
                info.subject.clone(),
                info.not_after.clone(),
                info.sans.join(", "),
            ],
            None => vec![
                r.name.clone(),
                r.authority.to_string(),
                "missing: `kubelab lab render` signs it".to_string(),
                "-".to_string(),
                "-".to_string(),
            ],
        })
        .collect();
    printer.data(printer::table(
        &["NAME", "CA", "SUBJECT", "EXPIRES", "NAMES"],
        &table,
    ));
    verdict()
}
