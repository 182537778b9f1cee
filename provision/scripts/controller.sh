#!/usr/bin/env bash
# controllers: kube-apiserver, kube-controller-manager and kube-scheduler of
# one control-plane node, from the release binaries kubelab uploaded, each
# serving on the node's host-only address only.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

if [ "${1:-}" = uninstall ]; then
  stop_units kube-apiserver kube-controller-manager kube-scheduler
  rm -f /usr/local/bin/kube-apiserver /usr/local/bin/kube-controller-manager \
    /usr/local/bin/kube-scheduler /usr/local/bin/kubectl
  rm -rf /var/lib/kubernetes /etc/kubernetes
  exit 0
fi

ensure_packages "${packages_controllers[@]}"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
require_artifacts "${binaries[@]}"
for b in "${binaries[@]}"; do
  install_binary "$(artifact "$b")" "/usr/local/bin/$b"
done
mkdir -p /etc/kubernetes/config
chmod 700 /var/lib/kubernetes

pki=/var/lib/kubernetes
unit_dir=/etc/systemd/system
apiserver=("$unit_dir/kube-apiserver.service" /usr/local/bin/kube-apiserver "$pki"/*.pem "$pki/encryption-config.yaml")
manager=("$unit_dir/kube-controller-manager.service" /usr/local/bin/kube-controller-manager "$pki"/*.pem "$pki/kube-controller-manager.kubeconfig")
scheduler=("$unit_dir/kube-scheduler.service" /usr/local/bin/kube-scheduler "$pki"/kube-scheduler*.pem "$pki/kube-scheduler.kubeconfig" /etc/kubernetes/config/kube-scheduler.yaml)
restart_if_changed kube-apiserver kube-apiserver "${apiserver[@]}"
restart_if_changed kube-controller-manager kube-controller-manager "${manager[@]}"
restart_if_changed kube-scheduler kube-scheduler "${scheduler[@]}"

# Anonymous requests may read the health endpoints (system:public-info-viewer).
ca=$pki/ca.pem
wait_for "kube-apiserver /readyz on $KUBELAB_ADDRESS:6443" 180 \
  curl -fsS --cacert "$ca" "https://$KUBELAB_ADDRESS:6443/readyz"
wait_for "kube-controller-manager /healthz on $KUBELAB_ADDRESS:10257" 120 \
  curl -fsS --cacert "$ca" "https://$KUBELAB_ADDRESS:10257/healthz"
wait_for "kube-scheduler /healthz on $KUBELAB_ADDRESS:10259" 120 \
  curl -fsS --cacert "$ca" "https://$KUBELAB_ADDRESS:10259/healthz"
applied kube-apiserver "${apiserver[@]}"
applied kube-controller-manager "${manager[@]}"
applied kube-scheduler "${scheduler[@]}"
