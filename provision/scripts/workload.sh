#!/usr/bin/env bash
# workload: the nginx test Deployment and its NodePort Service, applied on
# the first controller; done when every replica is Ready and every worker
# runs at least one.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

if [ "${1:-}" = uninstall ]; then
  # nginx lives in the cluster, which goes with the controllers.
  log "nothing to remove for the workload"
  exit 0
fi
need_kubectl

manifest=$cluster/manifests/nginx.yaml
k apply -f "$manifest"
wait_for "every nginx replica to be Ready" 600 \
  k -n default rollout status deployment/nginx --timeout=5s

mapfile -t workers < <(awk '$1 !~ /^#/ && NF == 2 { print $1 }' "$cluster/pod-cidrs")
replicas=$(k -n default get deployment nginx -o 'jsonpath={.spec.replicas}')
# spread_ok : true when each worker runs a Ready nginx pod (or there are
# fewer replicas than workers and each replica is on its own worker).
spread_ok() {
  local nodes expected=${#workers[@]}
  nodes=$(k -n default get pods -l app.kubernetes.io/name=nginx --no-headers \
    -o custom-columns=NODE:.spec.nodeName,READY:.status.containerStatuses[0].ready |
    awk '$2 == "true" { print $1 }' | sort -u)
  [ "$replicas" -lt "$expected" ] && expected=$replicas
  [ "$(grep -c . <<<"$nodes")" -ge "$expected" ]
}
wait_for "the nginx replicas to spread over ${workers[*]}" 120 spread_ok
log "nginx: $replicas replica(s) Ready on $(k -n default get pods -l app.kubernetes.io/name=nginx -o 'jsonpath={.items[*].spec.nodeName}')"
