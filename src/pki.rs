//! The lab's PKI, signed with rcgen: a cluster CA, a separate etcd CA (so no
//! kubelet or kube-proxy certificate is an etcd client) and the Kubernetes
//! the Hard Way set of certificates, ECDSA P-256.
//!
//! Everything lives under `.kubelab/pki/`, keys 0600. It is generated once:
//! a later run loads what is on disk and signs only the certificates that are
//! missing or whose subject or names no longer match the topology (a new
//! worker signs one certificate). Key material is never printed or logged;
//! [`KeyPem`] has no `Display` and a redacting `Debug`.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};

use crate::config::{Lab, Role};
use crate::error::{Error, Result};
use crate::topology::Topology;

/// Certificates start an hour in the past so a VM whose clock lags the host's
/// a little (common right after a snapshot restore) still accepts them.
const BACKDATE_HOURS: i64 = 1;

/// Which CA signs a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    Cluster,
    Etcd,
    /// The aggregation layer's own CA (`--requestheader-client-ca-file`):
    /// a certificate it signs may assert any user to an aggregated API, so
    /// it signs only the apiserver's front-proxy client.
    FrontProxy,
}

impl Authority {
    /// The file stem of the CA's certificate in the lab's pki/.
    pub fn ca_stem(self) -> &'static str {
        match self {
            Authority::Cluster => "ca",
            Authority::Etcd => "etcd-ca",
            Authority::FrontProxy => "front-proxy-ca",
        }
    }
}

/// What a certificate is used for (its extended key usages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Client,
    Server,
    /// Both: kubelets serve and call the API; etcd peers dial each other;
    /// etcd's gRPC gateway dials its own server with the server certificate.
    ClientServer,
}

/// One certificate the lab needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// File stem under pki/: `<name>.pem` and `<name>-key.pem`.
    pub name: String,
    pub common_name: String,
    pub organization: Option<String>,
    /// DNS names and IP addresses, in this order in the certificate.
    pub sans: Vec<String>,
    pub authority: Authority,
    pub usage: Usage,
}

/// A PEM private key. Never displayed; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPem(String);

impl KeyPem {
    /// Wraps secret text (a key, or a file that embeds one).
    pub fn new(text: String) -> KeyPem {
        KeyPem(text)
    }

    /// The PEM text, for writing into a 0600 file and nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for KeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPem(<redacted>)")
    }
}

/// A certificate with its key.
#[derive(Debug, Clone)]
pub struct Issued {
    pub spec: CertSpec,
    pub cert_pem: String,
    pub key: KeyPem,
}

/// The whole PKI of a lab, loaded or freshly signed.
#[derive(Debug)]
pub struct Pki {
    pub cluster_ca: CaFiles,
    pub etcd_ca: CaFiles,
    pub front_proxy_ca: CaFiles,
    pub certs: Vec<Issued>,
    /// Signs service-account tokens (apiserver's --service-account-signing-key-file).
    pub service_account_key: KeyPem,
    /// Its public half (--service-account-key-file).
    pub service_account_public_pem: String,
    /// The aescbc key for Secrets at rest, base64 of 32 random bytes.
    pub encryption_key: KeyPem,
    /// Names of the files written by this run (certificates signed, keys made).
    pub created: Vec<String>,
}

/// A CA's certificate and key.
#[derive(Debug, Clone)]
pub struct CaFiles {
    pub cert_pem: String,
    pub key: KeyPem,
}

impl Pki {
    /// The certificate named `name`. Every name `specs` returns is present.
    pub fn cert(&self, name: &str) -> Option<&Issued> {
        self.certs.iter().find(|c| c.spec.name == name)
    }
}

fn dn(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

fn spec(
    name: impl Into<String>,
    common_name: impl Into<String>,
    organization: Option<&str>,
    sans: Vec<String>,
    authority: Authority,
    usage: Usage,
) -> CertSpec {
    CertSpec {
        name: name.into(),
        common_name: common_name.into(),
        organization: organization.map(str::to_string),
        sans,
        authority,
        usage,
    }
}

/// The first address of the service range: the `kubernetes` Service's
/// ClusterIP, which pods use to reach the API.
pub fn first_service_ip(lab: &Lab) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(lab.network.service_cidr.network()) + 1)
}

/// Every certificate this lab needs, in a stable order.
pub fn specs(lab: &Lab, topo: &Topology) -> Vec<CertSpec> {
    use Authority::{Cluster, Etcd};
    use Usage::{Client, ClientServer, Server};
    let node_names =
        |n: &crate::topology::Node| vec![n.name.clone(), n.fqdn.clone(), n.address.to_string()];
    let mut out = vec![
        spec(
            "admin",
            "admin",
            Some("system:masters"),
            vec![],
            Cluster,
            Client,
        ),
        spec(
            "kube-proxy",
            "system:kube-proxy",
            Some("system:node-proxier"),
            vec![],
            Cluster,
            Client,
        ),
        spec(
            "kube-controller-manager",
            "system:kube-controller-manager",
            Some("system:kube-controller-manager"),
            vec![],
            Cluster,
            Client,
        ),
        spec(
            "kube-scheduler",
            "system:kube-scheduler",
            Some("system:kube-scheduler"),
            vec![],
            Cluster,
            Client,
        ),
        // The apiserver's identity towards kubelets; RBAC grants it the
        // kubelet API (not system:masters: it needs nothing else).
        spec(
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            None,
            vec![],
            Cluster,
            Client,
        ),
    ];

    let mut apiserver_sans = vec![
        first_service_ip(lab).to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        "kubernetes.default.svc.cluster.local".to_string(),
    ];
    for n in topo.by_role(Role::Controller).chain(topo.by_role(Role::Lb)) {
        apiserver_sans.extend(node_names(n));
    }
    apiserver_sans.push(topo.api.name.clone());
    apiserver_sans.push(topo.api.address.to_string());
    apiserver_sans.push("127.0.0.1".to_string());
    out.push(spec(
        "kube-apiserver",
        "kube-apiserver",
        None,
        dedup(apiserver_sans),
        Cluster,
        Server,
    ));

    for n in topo.by_role(Role::Controller) {
        // Serving certificates so /healthz of the scheduler (10259) and the
        // controller-manager (10257) can be checked against the lab CA.
        let mut sans = node_names(n);
        sans.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
        out.push(spec(
            format!("{}-kube-scheduler-serving", n.name),
            "kube-scheduler",
            None,
            sans.clone(),
            Cluster,
            Server,
        ));
        out.push(spec(
            format!("{}-kube-controller-manager-serving", n.name),
            "kube-controller-manager",
            None,
            sans,
            Cluster,
            Server,
        ));
    }

    for n in topo.by_role(Role::Worker) {
        out.push(spec(
            n.name.clone(),
            format!("system:node:{}", n.name),
            Some("system:nodes"),
            node_names(n),
            Cluster,
            ClientServer,
        ));
    }

    for n in topo.by_role(Role::Etcd) {
        // 127.0.0.1 lets etcdctl on the node itself verify the server.
        let mut sans = node_names(n);
        sans.push("127.0.0.1".to_string());
        out.push(spec(
            format!("{}-etcd-server", n.name),
            n.name.clone(),
            None,
            sans.clone(),
            Etcd,
            ClientServer,
        ));
        out.push(spec(
            format!("{}-etcd-peer", n.name),
            n.name.clone(),
            None,
            node_names(n),
            Etcd,
            ClientServer,
        ));
    }
    out.push(spec(
        "apiserver-etcd-client",
        "kube-apiserver-etcd-client",
        None,
        vec![],
        Etcd,
        Client,
    ));
    // kube-apiserver's identity when it proxies to an aggregated API
    // (metrics-server): the name --requestheader-allowed-names admits.
    out.push(spec(
        "front-proxy-client",
        FRONT_PROXY_CLIENT,
        None,
        vec![],
        Authority::FrontProxy,
        Client,
    ));
    out
}

/// The common name of the front-proxy client certificate.
pub const FRONT_PROXY_CLIENT: &str = "front-proxy-client";

fn dedup(names: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    names
        .into_iter()
        .filter(|n| seen.insert(n.clone()))
        .collect()
}

fn pki_error(what: &str, err: impl std::fmt::Display) -> Error {
    Error::other(
        format!("{what}: {err}"),
        "a file under .kubelab/pki/ may be damaged; move the directory away to sign a new PKI (the running lab then needs its certificates again)",
    )
}

fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| pki_error("reading random bytes", e))?;
    // A positive DER INTEGER: clear the top bit.
    bytes[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&bytes))
}

fn validity(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(BACKDATE_HOURS);
    params.not_after = now + time::Duration::days(i64::from(days));
}

fn ca_params(common_name: &str, days: u32) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(common_name, Some("kubelab"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial()?);
    validity(&mut params, days);
    Ok(params)
}

fn leaf_params(spec: &CertSpec, days: u32) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(&spec.common_name, spec.organization.as_deref());
    params.subject_alt_names = spec
        .sans
        .iter()
        .map(|s| match s.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => s
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|e| pki_error(&format!("the name {s:?}"), e)),
        })
        .collect::<Result<_>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match spec.usage {
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Usage::ClientServer => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial()?);
    validity(&mut params, days);
    Ok(params)
}

fn new_key() -> Result<KeyPair> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| pki_error("generating a key", e))
}

/// Reads a file if it exists.
fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs_err::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Where new keys and certificates go: written to the lab's folder, or, for
/// a preview (`lab up --dry-run`), only named.
struct Out {
    write: bool,
    created: Vec<String>,
}

impl Out {
    fn key(&mut self, path: &Path, pem: &str) -> Result<()> {
        self.file(path, pem, 0o600)
    }

    fn cert(&mut self, path: &Path, pem: &str) -> Result<()> {
        self.file(path, pem, 0o644)
    }

    fn file(&mut self, path: &Path, pem: &str, mode: u32) -> Result<()> {
        if self.write {
            crate::fsutil::write_atomic(path, pem.as_bytes(), mode)?;
        }
        self.created.push(file_name(path));
        Ok(())
    }
}

/// Loads a key from `path`, or makes and writes a new one.
fn load_or_create_key(path: &Path, out: &mut Out) -> Result<(KeyPair, bool)> {
    if let Some(pem) = read_optional(path)? {
        let key =
            KeyPair::from_pem(&pem).map_err(|e| pki_error(&format!("{}", path.display()), e))?;
        return Ok((key, false));
    }
    let key = new_key()?;
    out.key(path, &key.serialize_pem())?;
    Ok((key, true))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A CA: its issuer for signing, its files, and whether it is new (then
/// every certificate it signed before is stale and is signed again).
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    files: CaFiles,
    fresh: bool,
}

fn load_or_create_ca(
    dir: &Path,
    stem: &str,
    common_name: &str,
    days: u32,
    out: &mut Out,
) -> Result<Ca> {
    let cert_path = dir.join(format!("{stem}.pem"));
    let key_path = dir.join(format!("{stem}-key.pem"));
    let cert = read_optional(&cert_path)?;
    let key = read_optional(&key_path)?;
    if let (Some(cert_pem), Some(key_pem)) = (cert, key) {
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| pki_error(&format!("{}", key_path.display()), e))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
            .map_err(|e| pki_error(&format!("{}", cert_path.display()), e))?;
        return Ok(Ca {
            issuer,
            files: CaFiles {
                cert_pem,
                key: KeyPem(key_pem),
            },
            fresh: false,
        });
    }
    // Half a CA (a lost key or certificate) cannot sign anything that
    // verifies against what the nodes hold: start this CA over.
    let key = new_key()?;
    let params = ca_params(common_name, days)?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| pki_error(&format!("signing {stem}"), e))?;
    let key_pem = key.serialize_pem();
    out.key(&key_path, &key_pem)?;
    out.cert(&cert_path, &cert.pem())?;
    Ok(Ca {
        issuer: Issuer::new(params, key),
        files: CaFiles {
            cert_pem: cert.pem(),
            key: KeyPem(key_pem),
        },
        fresh: true,
    })
}

/// What an existing certificate says about itself, to compare with its spec.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub sans: Vec<String>,
    /// RFC 3339, UTC.
    pub not_after: String,
}

/// Subject, names and expiry of a PEM certificate.
pub fn inspect(cert_pem: &str) -> Result<CertInfo> {
    use x509_parser::extensions::GeneralName;
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| pki_error("reading a PEM certificate", e))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| pki_error("parsing a certificate", e))?;
    let sans = match cert
        .subject_alternative_name()
        .map_err(|e| pki_error("reading a certificate's names", e))?
    {
        Some(ext) => ext
            .value
            .general_names
            .iter()
            .map(|name| match name {
                GeneralName::DNSName(dns) => dns.to_string(),
                GeneralName::IPAddress(bytes) => match <[u8; 4]>::try_from(*bytes) {
                    Ok(v4) => Ipv4Addr::from(v4).to_string(),
                    Err(_) => format!("{bytes:?}"),
                },
                other => other.to_string(),
            })
            .collect(),
        None => Vec::new(),
    };
    let not_after = cert
        .validity()
        .not_after
        .to_datetime()
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| pki_error("formatting an expiry date", e))?;
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        sans,
        not_after,
    })
}

/// What is wrong with `<name>.pem` in `dir`, checked against its CA's
/// certificate (`ca_stem`: `ca` or `etcd-ca`; a CA against itself) and its
/// own key `<name>-key.pem`: each problem names the file. Empty when the
/// certificate parses, its CA signed it, and the key is its key.
pub fn check(dir: &Path, name: &str, ca_stem: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let read = |file: &str| -> std::result::Result<String, String> {
        let path = dir.join(file);
        match std::fs::read(&path) {
            Ok(bytes) => {
                String::from_utf8(bytes).map_err(|_| format!("{file}: not text (not a PEM file)"))
            }
            Err(e) if path.is_dir() => Err(format!("{file}: is a directory ({e})")),
            Err(e) => Err(format!("{file}: {e}")),
        }
    };
    let parse = |file: &str, text: &str| -> std::result::Result<Vec<u8>, String> {
        x509_parser::pem::parse_x509_pem(text.as_bytes())
            .map(|(_, pem)| pem.contents)
            .map_err(|e| format!("{file}: not a PEM certificate ({e})"))
    };
    let cert_file = format!("{name}.pem");
    let cert_der = match read(&cert_file).and_then(|t| parse(&cert_file, &t)) {
        Ok(der) => der,
        Err(e) => return vec![e],
    };
    let cert = match x509_parser::parse_x509_certificate(&cert_der) {
        Ok((_, cert)) => cert,
        Err(e) => return vec![format!("{cert_file}: not an X.509 certificate ({e})")],
    };
    let ca_file = format!("{ca_stem}.pem");
    match read(&ca_file).and_then(|t| parse(&ca_file, &t)) {
        Ok(ca_der) => match x509_parser::parse_x509_certificate(&ca_der) {
            Ok((_, ca)) => {
                if cert.verify_signature(Some(ca.public_key())).is_err() {
                    problems.push(format!("{cert_file}: not signed by {ca_file}"));
                }
            }
            Err(e) => problems.push(format!("{ca_file}: not an X.509 certificate ({e})")),
        },
        Err(e) if ca_stem != name => {
            problems.push(format!("cannot check {cert_file} against its CA: {e}"))
        }
        Err(_) => {}
    }
    let key_file = format!("{name}-key.pem");
    match read(&key_file) {
        Ok(text) => match KeyPair::from_pem(&text) {
            Ok(key) => {
                if rcgen::PublicKeyData::subject_public_key_info(&key) != cert.public_key().raw {
                    problems.push(format!("{key_file}: is not the key of {cert_file}"));
                }
            }
            Err(_) => problems.push(format!("{key_file}: not a PEM private key")),
        },
        Err(e) => problems.push(e),
    }
    problems
}

fn expected_subject(spec: &CertSpec) -> String {
    match &spec.organization {
        Some(o) => format!("O={o}, CN={}", spec.common_name),
        None => format!("CN={}", spec.common_name),
    }
}

/// Loads the lab's PKI from `dir`, signing whatever is missing or stale.
pub fn load_or_create(dir: &Path, lab: &Lab, topo: &Topology) -> Result<Pki> {
    fs_err::create_dir_all(dir)?;
    load(dir, lab, topo, true)
}

/// The PKI `load_or_create` would give, with nothing written: what is
/// missing or stale is signed in memory and named in `created`.
pub fn preview(dir: &Path, lab: &Lab, topo: &Topology) -> Result<Pki> {
    load(dir, lab, topo, false)
}

fn load(dir: &Path, lab: &Lab, topo: &Topology, write: bool) -> Result<Pki> {
    let mut created = Out {
        write,
        created: Vec::new(),
    };
    let cluster_ca = load_or_create_ca(
        dir,
        "ca",
        &format!("kubelab {} cluster CA", lab.name),
        lab.certificate_validity_days,
        &mut created,
    )?;
    let etcd_ca = load_or_create_ca(
        dir,
        "etcd-ca",
        &format!("kubelab {} etcd CA", lab.name),
        lab.certificate_validity_days,
        &mut created,
    )?;
    let front_proxy_ca = load_or_create_ca(
        dir,
        "front-proxy-ca",
        &format!("kubelab {} front-proxy CA", lab.name),
        lab.certificate_validity_days,
        &mut created,
    )?;

    let mut certs = Vec::new();
    for spec in specs(lab, topo) {
        let ca = match spec.authority {
            Authority::Cluster => &cluster_ca,
            Authority::Etcd => &etcd_ca,
            Authority::FrontProxy => &front_proxy_ca,
        };
        let cert_path = dir.join(format!("{}.pem", spec.name));
        let key_path = dir.join(format!("{}-key.pem", spec.name));
        let (key, key_fresh) = load_or_create_key(&key_path, &mut created)?;
        let existing = read_optional(&cert_path)?;
        let current = match &existing {
            Some(pem) if !ca.fresh && !key_fresh => {
                let info = inspect(pem)?;
                info.subject == expected_subject(&spec) && info.sans == spec.sans
            }
            _ => false,
        };
        let cert_pem = match existing {
            Some(pem) if current => pem,
            _ => {
                let cert = leaf_params(&spec, lab.certificate_validity_days)?
                    .signed_by(&key, &ca.issuer)
                    .map_err(|e| pki_error(&format!("signing {}", spec.name), e))?;
                created.cert(&cert_path, &cert.pem())?;
                cert.pem()
            }
        };
        certs.push(Issued {
            spec,
            cert_pem,
            key: KeyPem(key.serialize_pem()),
        });
    }

    let sa_path = dir.join("service-accounts-key.pem");
    let (sa_key, _) = load_or_create_key(&sa_path, &mut created)?;
    let sa_public = sa_key.public_key_pem();
    let sa_public_path = dir.join("service-accounts.pem");
    if read_optional(&sa_public_path)?.as_deref() != Some(sa_public.as_str()) {
        created.cert(&sa_public_path, &sa_public)?;
    }

    let enc_path = dir.join("encryption-key");
    let encryption_key = match read_optional(&enc_path)? {
        Some(text) => text.trim().to_string(),
        None => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| pki_error("reading random bytes", e))?;
            let text = base64::engine::general_purpose::STANDARD.encode(bytes);
            created.key(&enc_path, &format!("{text}\n"))?;
            text
        }
    };

    Ok(Pki {
        cluster_ca: cluster_ca.files,
        etcd_ca: etcd_ca.files,
        front_proxy_ca: front_proxy_ca.files,
        certs,
        service_account_key: KeyPem(sa_key.serialize_pem()),
        service_account_public_pem: sa_public,
        encryption_key: KeyPem(encryption_key),
        created: created.created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LabSource;

    fn lab(yaml: &str) -> Lab {
        crate::lab::parse(yaml, LabSource::BuiltIn).unwrap()
    }

    #[test]
    fn validity_follows_the_lab_setting() {
        let lab = lab("certificates:\n  validity_days: 30\n");
        let topo = Topology::new(&lab);
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path(), &lab, &topo).unwrap();
        let expected = time::OffsetDateTime::now_utc() + time::Duration::days(30);
        for file in ["ca.pem", "etcd-ca.pem", "kube-apiserver.pem", "worker0.pem"] {
            let pem = std::fs::read_to_string(dir.path().join(file)).unwrap();
            let not_after = time::OffsetDateTime::parse(
                &inspect(&pem).unwrap().not_after,
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            let off = (not_after - expected).whole_minutes().abs();
            assert!(
                off < 10,
                "{file} expires {not_after}, expected about {expected}"
            );
        }
    }

    #[test]
    fn apiserver_names_cover_every_way_to_reach_it() {
        let lab = crate::lab::builtin();
        let topo = Topology::new(&lab);
        let specs = specs(&lab, &topo);
        let api = specs.iter().find(|s| s.name == "kube-apiserver").unwrap();
        for name in [
            "10.32.0.1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "controller0",
            "controller2.lan",
            "192.168.56.22",
            "lb1",
            "192.168.56.52",
            "api.lan",
            "192.168.56.50",
            "127.0.0.1",
        ] {
            assert!(api.sans.iter().any(|s| s == name), "missing {name}");
        }
    }

    #[test]
    fn etcd_certs_come_from_the_etcd_ca_and_kubelets_do_not() {
        let lab = crate::lab::builtin();
        let specs = specs(&lab, &Topology::new(&lab));
        let etcd: Vec<&str> = specs
            .iter()
            .filter(|s| s.authority == Authority::Etcd)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(
            etcd,
            [
                "etcd0-etcd-server",
                "etcd0-etcd-peer",
                "etcd1-etcd-server",
                "etcd1-etcd-peer",
                "etcd2-etcd-server",
                "etcd2-etcd-peer",
                "apiserver-etcd-client"
            ]
        );
        let worker = specs.iter().find(|s| s.name == "worker0").unwrap();
        assert_eq!(worker.common_name, "system:node:worker0");
        assert_eq!(worker.organization.as_deref(), Some("system:nodes"));
        assert_eq!(worker.authority, Authority::Cluster);
    }

    #[test]
    fn second_run_reuses_everything_and_a_new_worker_signs_one_cert() {
        let dir = tempfile::tempdir().unwrap();
        let one = crate::lab::builtin();
        let first = load_or_create(dir.path(), &one, &Topology::new(&one)).unwrap();
        assert!(first.created.iter().any(|f| f == "ca.pem"));
        let again = load_or_create(dir.path(), &one, &Topology::new(&one)).unwrap();
        assert!(again.created.is_empty(), "{:?}", again.created);
        assert_eq!(
            first.cert("admin").unwrap().cert_pem,
            again.cert("admin").unwrap().cert_pem
        );
        assert_eq!(first.encryption_key.expose(), again.encryption_key.expose());

        let two = lab("nodes:\n  worker:\n    count: 2\n");
        let grown = load_or_create(dir.path(), &two, &Topology::new(&two)).unwrap();
        assert_eq!(grown.created, ["worker1-key.pem", "worker1.pem"]);
        let info = inspect(&grown.cert("worker1").unwrap().cert_pem).unwrap();
        assert_eq!(info.subject, "O=system:nodes, CN=system:node:worker1");
        assert_eq!(info.sans, ["worker1", "worker1.lan", "192.168.56.31"]);
    }

    #[test]
    fn keys_are_0600_and_never_in_debug_output() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let lab = crate::lab::builtin();
        let pki = load_or_create(dir.path(), &lab, &Topology::new(&lab)).unwrap();
        for entry in fs_err::read_dir(dir.path()).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            if name.ends_with("-key.pem") || name == "encryption-key" {
                assert_eq!(mode, 0o600, "{name}");
            }
        }
        let debug = format!("{pki:?}");
        assert!(!debug.contains("PRIVATE KEY"));
        assert!(!debug.contains(pki.encryption_key.expose()));
    }

    /// D2/P07: `check` catches what mixed-up signers leave: a certificate
    /// another CA signed, a key that is not the certificate's, a file that
    /// does not parse; each by file name.
    #[test]
    fn check_names_certificates_that_do_not_verify() {
        let lab = crate::lab::builtin();
        let topo = Topology::new(&lab);
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        load_or_create(a.path(), &lab, &topo).unwrap();
        load_or_create(b.path(), &lab, &topo).unwrap();
        for spec in specs(&lab, &topo) {
            let ca = spec.authority.ca_stem();
            assert_eq!(
                check(a.path(), &spec.name, ca),
                Vec::<String>::new(),
                "{}",
                spec.name
            );
        }
        assert!(check(a.path(), "ca", "ca").is_empty());
        // What two renders at once left: b's admin cert and key in a's PKI.
        for f in ["admin.pem", "admin-key.pem"] {
            std::fs::copy(b.path().join(f), a.path().join(f)).unwrap();
        }
        assert_eq!(
            check(a.path(), "admin", "ca"),
            ["admin.pem: not signed by ca.pem"]
        );
        std::fs::copy(
            b.path().join("kube-proxy-key.pem"),
            a.path().join("kube-proxy-key.pem"),
        )
        .unwrap();
        assert_eq!(
            check(a.path(), "kube-proxy", "ca"),
            ["kube-proxy-key.pem: is not the key of kube-proxy.pem"]
        );
        std::fs::write(a.path().join("ca.pem"), "garbage\n").unwrap();
        let problems = check(a.path(), "kube-scheduler", "ca");
        assert!(
            problems[0].starts_with(
                "cannot check kube-scheduler.pem against its CA: ca.pem: not a PEM certificate"
            ),
            "{problems:?}"
        );
        assert!(check(a.path(), "ca", "ca")[0].starts_with("ca.pem: not a PEM certificate"));
    }
}
