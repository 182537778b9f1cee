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

if [ ! -x /usr/local/bin/etcd ]; then
  artifact=
  for f in /var/lib/kubelab/artifacts/etcd-v*-linux-*.tar.gz; do
    [ -e "$f" ] && artifact=$f
  done
  if [ -n "$artifact" ]; then
    tar -xzf "$artifact" -C /usr/local/bin --strip-components=1 --wildcards '*/etcd' '*/etcdctl'
  elif [ "${KUBELAB_ETCD_SOURCE:-release}" = distro ]; then
    ensure_packages etcd-server etcd-client
    ln -sf "$(command -v etcd)" /usr/local/bin/etcd
    ln -sf "$(command -v etcdctl)" /usr/local/bin/etcdctl
  else
    die "no etcd binary: kubelab uploads it from its download cache (\`kubelab artifacts fetch\`)"
  fi
fi
mkdir -p /var/lib/etcd
chmod 700 /var/lib/etcd
files=(/etc/systemd/system/etcd.service /etc/etcd/ca.pem /etc/etcd/server.pem /etc/etcd/server-key.pem /etc/etcd/peer.pem /etc/etcd/peer-key.pem)
restart_if_changed etcd etcd "${files[@]}"
# A member only reports healthy once the cluster has quorum: on first
# creation kubelab starts every member at once, so this does not deadlock.
wait_for "etcd member $KUBELAB_NODE healthy over TLS" 120 \
  env ETCDCTL_API=3 /usr/local/bin/etcdctl --endpoints "https://$KUBELAB_ADDRESS:2379" \
  --cacert /etc/etcd/ca.pem --cert /etc/etcd/server.pem --key /etc/etcd/server-key.pem endpoint health
applied etcd "${files[@]}"
