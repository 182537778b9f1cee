#!/usr/bin/env bash
# registry: one distribution pull-through cache per upstream registry, each
# on its own port of the host-only address (a proxy serves one upstream).
# The binary comes from a `registry_*_linux_*.tar.gz` release kubelab
# uploaded, else from the distribution's docker-registry package.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

if [ "${1:-}" = uninstall ]; then
  for unit in /etc/systemd/system/registry-*.service; do
    [ -e "$unit" ] && stop_units "$(basename "$unit")"
  done
  rm -rf /var/lib/kubelab-registry /etc/kubelab-registry
  rm -f /usr/local/bin/registry
  exit 0
fi

ensure_packages "${packages_registry[@]}"
release=$(artifact 'registry_*_linux_*.tar.gz')
if [ -n "$release" ]; then
  if changed registry-binary "$release"; then
    tar -xzf "$release" -C /usr/local/bin registry
    applied registry-binary "$release"
  fi
elif [ ! -x /usr/local/bin/registry ] || [ -L /usr/local/bin/registry ]; then
  ensure_packages "${packages_registry_distro[@]}"
  ln -sf /usr/bin/docker-registry /usr/local/bin/registry
fi
# The package's own instance listens on :5000 of every address; kubelab's
# caches take that port on the host-only address.
if systemctl list-unit-files docker-registry.service >/dev/null 2>&1; then
  systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
fi

# answers PORT : the cache on PORT serves the registry API.
answers() { curl -fsS -o /dev/null "http://$KUBELAB_ADDRESS:$1/v2/"; }

# answers_or_crashed PORT UNIT : it answers, or UNIT has exited and been
# restarted (no point waiting on).
answers_or_crashed() {
  answers "$1" || [ "$(systemctl show -P NRestarts "$2")" -gt 0 ] ||
    systemctl is-failed --quiet "$2"
}

configs=(/etc/kubelab-registry/*.yml)
[ -e "${configs[0]}" ] || die "no registry configs in /etc/kubelab-registry (kubelab renders one per upstream)"
for config in "${configs[@]}"; do
  upstream=$(basename "$config" .yml)
  unit="registry-${upstream//./-}.service"
  port=$(sed -n 's/^  addr: .*:\([0-9]*\)$/\1/p' "$config")
  [ -n "$port" ] || die "$config has no http.addr port"
  mkdir -p "/var/lib/kubelab-registry/$upstream"
  restart_if_changed "$unit" "$unit" "$config" "/etc/systemd/system/$unit" /usr/local/bin/registry
  # Until it answers, or systemd has had to restart it (it exited).
  wait_for "the $upstream cache to answer GET /v2/ on $KUBELAB_ADDRESS:$port" 60 \
    answers_or_crashed "$port" "$unit"
  if ! answers "$port"; then
    journalctl -u "$unit" -n 5 --no-pager -o cat 2>/dev/null | cut -c1-300 >&2 || true
    remote=$(sed -n 's/^  remoteurl: //p' "$config")
    die "$unit does not answer on $KUBELAB_ADDRESS:$port: the registry contacts its upstream $remote when it starts and exits when it cannot reach it (its last log lines are above), so $KUBELAB_NODE needs to reach $remote"
  fi
  applied "$unit" "$config" "/etc/systemd/system/$unit" /usr/local/bin/registry
done
