#!/usr/bin/env bash
# etcd: one member of the TLS etcd cluster. The binary comes from the
# artifact kubelab uploaded, or from the distribution's etcd-server package
# when the lab says `artifacts: distro`.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

if [ "${1:-}" = uninstall ]; then
  stop_units etcd
  rm -rf /var/lib/etcd /etc/etcd
  rm -f /usr/local/bin/etcd /usr/local/bin/etcdctl
  exit 0
fi

release=$(artifact 'etcd-v*-linux-*.tar.gz')
if [ -n "$release" ]; then
  # A new release file (a version bump) replaces the binaries, and the
  # restart below picks them up.
  if changed etcd-release "$release" || [ ! -x /usr/local/bin/etcd ] || [ -L /usr/local/bin/etcd ]; then
    log "installing etcd from $(basename "$release")"
    rm -f /usr/local/bin/etcd /usr/local/bin/etcdctl
    tar -xzf "$release" -C /usr/local/bin --strip-components=1 --wildcards '*/etcd' '*/etcdctl'
    applied etcd-release "$release"
  fi
elif [ "${KUBELAB_ETCD_SOURCE:-release}" = distro ]; then
  ensure_packages "${packages_etcd_distro[@]}"
  # The package's own etcd.service is kubelab's unit's to replace; its
  # start was held back while it installed. (Named by path: on PATH,
  # /usr/local/bin/etcd would be this very link.)
  for b in etcd etcdctl; do
    [ -x "/usr/bin/$b" ] || die "the ${packages_etcd_distro[*]} packages installed no /usr/bin/$b"
    ln -sfn "/usr/bin/$b" "/usr/local/bin/$b"
  done
elif [ ! -x /usr/local/bin/etcd ]; then
  die "no etcd binary: kubelab uploads it from its download cache (\`kubelab artifacts fetch\`)"
fi
mkdir -p /var/lib/etcd
chmod 700 /var/lib/etcd
files=(/etc/systemd/system/etcd.service /usr/local/bin/etcd /etc/etcd/ca.pem /etc/etcd/server.pem /etc/etcd/server-key.pem /etc/etcd/peer.pem /etc/etcd/peer-key.pem)
restart_if_changed etcd etcd "${files[@]}"
# A member only reports healthy once the cluster has quorum: on first
# creation kubelab starts every member at once, so this does not deadlock.
wait_for "etcd member $KUBELAB_NODE healthy over TLS" 120 \
  env ETCDCTL_API=3 /usr/local/bin/etcdctl --endpoints "https://$KUBELAB_ADDRESS:2379" \
  --cacert /etc/etcd/ca.pem --cert /etc/etcd/server.pem --key /etc/etcd/server-key.pem endpoint health
applied etcd "${files[@]}"
