#!/usr/bin/env bash
# addons: run once, on the first controller, with kubectl and the admin
# kubeconfig against https://api.<domain>:6443 (through the load balancers):
# the apiserver's RBAC to reach kubelets, each Node's spec.podCIDR from the
# plan (the controller-manager does not allocate them), then CoreDNS.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

if [ "${1:-}" = uninstall ]; then
  # CoreDNS and the RBAC live in the cluster, which goes with the controllers.
  rm -rf /var/lib/kubelab/cluster
  exit 0
fi
need_kubectl

wait_for "the API at https://api.$KUBELAB_DOMAIN:6443 to be ready" 180 k get --raw /readyz
k apply -f "$cluster/manifests/apiserver-to-kubelet.yaml"

# The CNI bridge config of each worker holds its range; the Node object must
# agree, and spec.podCIDR can be set once only.
while read -r node cidr; do
  case $node in '' | '#'*) continue ;; esac
  wait_for "node $node to register with the API" 300 k get node "$node"
  current=$(k get node "$node" -o 'jsonpath={.spec.podCIDR}')
  if [ -z "$current" ]; then
    log "setting spec.podCIDR of $node to $cidr"
    k patch node "$node" --type merge -p "{\"spec\":{\"podCIDR\":\"$cidr\",\"podCIDRs\":[\"$cidr\"]}}" >/dev/null
  elif [ "$current" != "$cidr" ]; then
    die "node $node has spec.podCIDR $current but the plan gives it $cidr; a Node's podCIDR cannot change: \`kubectl delete node $node\` and restart kubelet on $node, then run \`kubelab lab up\` again"
  fi
done <"$cluster/pod-cidrs"

if [ -f "$cluster/manifests/coredns.yaml" ]; then
  k apply -f "$cluster/manifests/coredns.yaml"
  wait_for "CoreDNS to be rolled out" 300 \
    k -n kube-system rollout status deployment/coredns --timeout=5s
fi

# metrics-server behind the aggregation layer, for `kubectl top`.
if [ -f "$cluster/manifests/metrics-server.yaml" ]; then
  k apply -f "$cluster/manifests/metrics-server.yaml"
fi
