//! Check 5, lb-failover (disruptive): haproxy stopped on the VIP holder, the
//! VIP moves to another load balancer and comes back once it starts again.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::config::Role;
use crate::topology::Node;

use super::api::readyz;
use super::http::{admin_client, api_base};
use super::{Ctx, Outcome, RETURN_WAIT, poll, tcp_accepts};

const FAILOVER_WAIT: Duration = Duration::from_secs(30);

/// The load balancers that hold `vip` right now.
async fn vip_holders(
    ctx: &Ctx<'_>,
    lbs: &[&Node],
    vip: Ipv4Addr,
) -> std::result::Result<Vec<String>, String> {
    let outs = futures_util::future::join_all(
        lbs.iter()
            .map(|lb| ctx.ssh(&lb.name, "ip -4 -o addr show", "look for the VIP")),
    )
    .await;
    let mut holders = Vec::new();
    for (lb, out) in lbs.iter().zip(outs) {
        if holds(&out.map_err(|e| format!("{}: {e}", lb.name))?, vip) {
            holders.push(lb.name.clone());
        }
    }
    Ok(holders)
}

/// Whether `ip -4 -o addr show` output lists `vip`.
fn holds(ip_addr: &str, vip: Ipv4Addr) -> bool {
    let needle = format!("inet {vip}/");
    ip_addr.lines().any(|l| l.contains(&needle))
}

pub(super) async fn lb_failover(ctx: &Ctx<'_>) -> Outcome {
    let topo = &ctx.loaded.topo;
    let vip = topo.api.address;
    let target = SocketAddr::from((vip, topo.api.port));
    let lbs: Vec<&Node> = topo.by_role(Role::Lb).collect();
    let hint = "`kubelab lab ssh LB -- sudo journalctl -u keepalived -u haproxy` on the load balancers says why";
    let holder = match vip_holders(ctx, &lbs, vip).await {
        Ok(h) if h.len() == 1 => h[0].clone(),
        Ok(h) => {
            return Outcome::failed(
                format!(
                    "the VIP {vip} is held by {} load balancers ({h:?}), not one",
                    h.len()
                ),
                hint,
            );
        }
        Err(e) => return Outcome::failed(e, hint),
    };
    if !tcp_accepts(target).await {
        return Outcome::failed(
            format!("{target} (held by {holder}) does not accept TCP before the test"),
            hint,
        );
    }
    // From the stop on, haproxy is on the list `lab verify` starts again
    // after Ctrl-C (which drops this check where it waits).
    if let Err(e) = ctx.stop_unit(&holder, "haproxy").await {
        return Outcome::failed(format!("could not stop haproxy on {holder}: {e}"), hint);
    }
    let new_holder = std::cell::RefCell::new(String::new());
    let moving = poll(FAILOVER_WAIT, || async {
        match vip_holders(ctx, &lbs, vip).await {
            Ok(h) if h.len() == 1 && h[0] != holder => {
                new_holder.replace(h[0].clone());
                tcp_accepts(target).await
            }
            _ => false,
        }
    });
    let moved = moving.await;
    let new_holder = new_holder.into_inner();
    // Where the API is up, it must answer through the new holder too.
    let api_note = match moved {
        Some(_) => match admin_client(ctx) {
            Ok(client) => match readyz(&client, &api_base(ctx)).await {
                Ok(()) => "; /readyz answered through it".to_string(),
                Err(_) => {
                    "; checked at the TCP level (the Kubernetes API does not answer)".to_string()
                }
            },
            Err(_) => String::new(),
        },
        _ => String::new(),
    };
    // Always restart haproxy, whatever happened above.
    let restarted = ctx.start_unit(&holder, "haproxy").await;
    let returned = match &restarted {
        Ok(_) => {
            poll(RETURN_WAIT, || async {
                matches!(vip_holders(ctx, &lbs, vip).await, Ok(h) if h == [holder.clone()])
                    && tcp_accepts(target).await
            })
            .await
        }
        Err(_) => None,
    };
    match (moved, restarted, returned) {
        (_, Err(e), _) => Outcome::failed(
            format!("could not start haproxy again on {holder}: {e}"),
            format!("start it by hand: `kubelab lab ssh {holder} -- sudo systemctl start haproxy`"),
        ),
        (None, Ok(_), _) => Outcome::failed(
            format!(
                "with haproxy stopped on {holder}, the VIP {vip} did not move to another load balancer accepting TCP on {} within {} s",
                topo.api.port,
                FAILOVER_WAIT.as_secs()
            ),
            hint,
        ),
        (Some(_), Ok(_), None) => Outcome::failed(
            format!(
                "the VIP moved to {new_holder}, but did not return to {holder} within {} s of haproxy starting again",
                RETURN_WAIT.as_secs()
            ),
            hint,
        ),
        (Some(took), Ok(_), Some(back)) => Outcome::Passed(format!(
            "haproxy stopped on {holder}: the VIP {vip} moved to {new_holder} and accepted TCP on {} after {:.1} s{api_note}; back on {holder} {:.1} s after haproxy started",
            topo.api.port,
            took.as_secs_f64(),
            back.as_secs_f64()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vip_is_found_in_ip_addr_output() {
        let out = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n2: host0    inet 192.168.56.51/24 brd 192.168.56.255 scope global host0\n2: host0    inet 192.168.56.50/32 scope global host0\n";
        assert!(holds(out, Ipv4Addr::new(192, 168, 56, 50)));
        assert!(!holds(out, Ipv4Addr::new(192, 168, 56, 5)));
    }
}
