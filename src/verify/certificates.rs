//! Check 11, certificates: none expired, none expiring within 30 days.

use crate::lab::LoadedLab;

use super::{Ctx, Outcome, judge};

const EXPIRY_WARNING_DAYS: i64 = 30;

/// Expired is Failed, within 30 days is Warned.
fn judge_expiry(now: time::OffsetDateTime, certs: &[(String, time::OffsetDateTime)]) -> Outcome {
    let expired: Vec<&str> = certs
        .iter()
        .filter(|(_, at)| *at <= now)
        .map(|(n, _)| n.as_str())
        .collect();
    if !expired.is_empty() {
        return Outcome::failed(
            format!("expired: {}", expired.join(", ")),
            "delete the expired files from .kubelab/pki and run `kubelab lab up` again: it signs new ones and re-provisions what uses them",
        );
    }
    let soon: Vec<String> = certs
        .iter()
        .filter(|(_, at)| *at - now < time::Duration::days(EXPIRY_WARNING_DAYS))
        .map(|(n, at)| format!("{n} ({} days)", (*at - now).whole_days()))
        .collect();
    if !soon.is_empty() {
        return Outcome::Warned {
            why: format!(
                "expiring within {EXPIRY_WARNING_DAYS} days: {}",
                soon.join(", ")
            ),
            hint: None,
        };
    }
    match certs.iter().min_by_key(|(_, at)| *at) {
        Some((name, at)) => Outcome::Passed(format!(
            "{} certificates; the first to expire is {name}, in {} days",
            certs.len(),
            (*at - now).whole_days()
        )),
        None => Outcome::failed("no certificates", "`kubelab lab render` signs them"),
    }
}

pub(super) fn certificates(ctx: &Ctx) -> Outcome {
    let LoadedLab { lab, topo, .. } = ctx.loaded;
    let mut names = vec![
        "ca".to_string(),
        "etcd-ca".to_string(),
        "front-proxy-ca".to_string(),
    ];
    names.extend(crate::pki::specs(lab, topo).into_iter().map(|s| s.name));
    let mut certs = Vec::new();
    let mut problems = Vec::new();
    for name in names {
        let path = ctx.pki_dir.join(format!("{name}.pem"));
        let parsed = fs_err::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|pem| crate::pki::inspect(&pem).map_err(|e| e.to_string()))
            .and_then(|info| {
                time::OffsetDateTime::parse(
                    &info.not_after,
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|e| format!("{}: {e}", path.display()))
            });
        match parsed {
            Ok(at) => certs.push((name, at)),
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        return judge(
            problems,
            String::new(),
            "`kubelab lab render` signs what is missing",
        );
    }
    judge_expiry(time::OffsetDateTime::now_utc(), &certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_fails_when_past_and_warns_within_30_days() {
        let now = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20000);
        let cert = |name: &str, days: i64| (name.to_string(), now + time::Duration::days(days));
        assert!(matches!(
            judge_expiry(now, &[cert("ca", 3000), cert("admin", 364)]),
            Outcome::Passed(d) if d == "2 certificates; the first to expire is admin, in 364 days"
        ));
        assert_eq!(
            judge_expiry(now, &[cert("ca", 3000), cert("admin", 12)]),
            Outcome::Warned {
                why: "expiring within 30 days: admin (12 days)".into(),
                hint: None
            }
        );
        assert!(matches!(
            judge_expiry(now, &[cert("ca", 3000), cert("admin", -1), cert("etcd0-etcd-peer", 5)]),
            Outcome::Failed { why, .. } if why == "expired: admin"
        ));
    }
}
