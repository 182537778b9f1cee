#!/usr/bin/env bash
# lb: haproxy in front of the API servers; with 2+ LBs keepalived holds the VIP.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

if [ "${1:-}" = uninstall ]; then
  stop_units keepalived haproxy
  rm -f /etc/sysctl.d/60-kubelab-nonlocal-bind.conf
  sysctl -q -w net.ipv4.ip_nonlocal_bind=0 || true
  exit 0
fi

# Before haproxy can first start: it binds the VIP before keepalived gives
# it to this node.
sysctl_file=/etc/sysctl.d/60-kubelab-nonlocal-bind.conf
if [ -f "$sysctl_file" ] && changed sysctl-nonlocal "$sysctl_file"; then
  sysctl -q -p "$sysctl_file"
  applied sysctl-nonlocal "$sysctl_file"
fi

packages=("${packages_lb[@]}")
[ -f /etc/keepalived/keepalived.conf ] && packages+=("${packages_vip[@]}")
ensure_packages "${packages[@]}"

haproxy -c -q -f /etc/haproxy/haproxy.cfg
restart_if_changed haproxy haproxy /etc/haproxy/haproxy.cfg
wait_for "haproxy listening on :6443" 30 sh -c "ss -Hltn 'sport = :6443' | grep -q ."
applied haproxy /etc/haproxy/haproxy.cfg

if [ -f /etc/keepalived/keepalived.conf ]; then
  keepalived --config-test -f /etc/keepalived/keepalived.conf
  restart_if_changed keepalived keepalived /etc/keepalived/keepalived.conf
  wait_for "keepalived running" 30 systemctl is-active --quiet keepalived
  applied keepalived /etc/keepalived/keepalived.conf
fi
