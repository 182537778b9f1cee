#!/usr/bin/env bash
# routes: persistent routes to every other worker's pod range via that
# worker's host-only address, held by kubelab-routes.service across reboots.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

if [ "${1:-}" = uninstall ]; then
  stop_units kubelab-routes.service
  # The pod-egress masquerade rule the unit added on a worker.
  if command -v iptables >/dev/null; then
    iptables -t nat -S POSTROUTING 2>/dev/null | grep -e '--comment kubelab-pod-egress' |
      while read -r _ rule; do
        read -ra args <<<"$rule"
        iptables -t nat -D "${args[@]}" || true
      done
  fi
  if [ -f /etc/kubelab/pod-routes ]; then
    while read -r verb action cidr via gateway _; do
      if [ "$verb" = route ] && [ "$action" = replace ] && [ "$via" = via ]; then
        ip route del "$cidr" via "$gateway" 2>/dev/null || true
      fi
    done </etc/kubelab/pod-routes
  fi
  exit 0
fi

routes=/etc/kubelab/pod-routes
unit=kubelab-routes.service
[ -f "$routes" ] || die "no $routes on $KUBELAB_NODE: kubelab uploads it with this phase"
pod_cidr=$(awk '$1 == "#" && $2 == "kubelab-pod-cidr" { print $3 }' "$routes")
[ -n "$pod_cidr" ] || die "$routes does not name the lab's pod range (# kubelab-pod-cidr)"
# A worker's unit also adds the pod-egress masquerade rule with iptables.
if grep -q iptables "/etc/systemd/system/$unit"; then
  ensure_packages "${packages_pod_egress[@]}"
fi
systemctl daemon-reload
systemctl enable "$unit" >/dev/null 2>&1 || systemctl enable "$unit"
# missing_routes : each rendered route the kernel's table lacks, one a line.
missing_routes() {
  local verb action cidr via gateway
  while read -r verb action cidr via gateway _; do
    if [ "$verb" != route ] || [ "$action" != replace ] || [ "$via" != via ]; then
      continue
    fi
    ip route show "$cidr" | grep -q "via $gateway " || echo "$cidr via $gateway"
  done <"$routes"
}

# A oneshot unit: restart it (synchronously) so its `route replace` lines
# apply now; `replace` leaves routes that are already right alone.
if changed routes "$routes" "/etc/systemd/system/$unit" ||
  ! systemctl is-active --quiet "$unit" || [ -n "$(missing_routes)" ]; then
  log "applying $routes"
  systemctl restart "$unit" ||
    die "$unit failed: $(systemctl status --no-pager -n 5 "$unit" 2>&1 | tail -n 5)"
fi
# stale_routes : each route into the lab's pod range via a gateway that the
# file does not list (a worker scaled away), one a line. The node's own
# range on its bridge has no gateway and stays.
stale_routes() {
  local cidr via gateway
  while read -r cidr via gateway _; do
    [ "$via" = via ] || continue
    grep -Fxq "route replace $cidr via $gateway" "$routes" || echo "$cidr via $gateway"
  done < <(ip -4 route show root "$pod_cidr")
}
while read -r cidr _ gateway; do
  [ -n "$cidr" ] || continue
  log "removing the stale route $cidr via $gateway"
  ip route del "$cidr" via "$gateway"
done < <(stale_routes)

absent=$(missing_routes)
[ -z "$absent" ] || die "routes missing after $unit ran: $(echo "$absent" | paste -sd, -)"
stale=$(stale_routes)
[ -z "$stale" ] || die "stale routes remain after removing them: $(echo "$stale" | paste -sd, -)"
log "$(grep -c '^route ' "$routes" || true) pod route(s) in place"
applied routes "$routes" "/etc/systemd/system/$unit"
