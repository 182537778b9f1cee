#!/usr/bin/env bash
# resolv: send the lab domain to dns0 through systemd-resolved; other lookups
# keep the node's own DNS.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

if [ "${1:-}" = uninstall ]; then
  # The lab domain no longer goes to dns0.
  rm -f /etc/systemd/resolved.conf.d/kubelab.conf
  systemctl try-restart systemd-resolved || true
  exit 0
fi

ensure_packages "${packages_resolv[@]}"
dropin=/etc/systemd/resolved.conf.d/kubelab.conf
systemctl enable systemd-resolved >/dev/null 2>&1 || true
if changed resolved "$dropin" || ! systemctl is-active --quiet systemd-resolved; then
  systemctl restart systemd-resolved
fi
# A NAT-configured node starts with a plain /etc/resolv.conf: point it at
# resolved's stub so every program goes through the drop-in.
stub=/run/systemd/resolve/stub-resolv.conf
wait_for "systemd-resolved's stub resolv.conf" 30 test -s "$stub"
if [ "$(readlink /etc/resolv.conf || true)" != "$stub" ]; then
  ln -sf "$stub" /etc/resolv.conf
fi
wait_for "dns0.$KUBELAB_DOMAIN to resolve through the lab DNS" 60 getent hosts "dns0.$KUBELAB_DOMAIN"
applied resolved "$dropin"
