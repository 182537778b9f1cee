#!/usr/bin/env bash
# certs: the node's certificates and keys arrived over SSH; check each
# certificate is valid now and each private key is readable by root only.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

if [ "${1:-}" = uninstall ]; then
  # The certificates and keys are files kubelab placed: it removes them.
  log "nothing to stop for certificates"
  exit 0
fi

ensure_packages "${packages_certs[@]}"
count=0
for dir in /etc/etcd /var/lib/kubernetes /var/lib/kubelet /var/lib/kube-proxy; do
  [ -d "$dir" ] || continue
  for f in "$dir"/*.pem; do
    [ -e "$f" ] || continue
    if grep -q "PRIVATE KEY" "$f"; then
      chown root:root "$f"
      chmod 600 "$f"
      openssl pkey -noout -in "$f" || die "$f is not a private key"
    elif grep -q "BEGIN CERTIFICATE" "$f"; then
      openssl x509 -noout -checkend 0 -in "$f" >/dev/null ||
        die "$f is not a valid certificate now (check the VM's clock)"
    elif grep -q "BEGIN PUBLIC KEY" "$f"; then
      openssl pkey -pubin -noout -in "$f" || die "$f is not a public key"
    else
      die "$f holds neither a certificate nor a key"
    fi
    count=$((count + 1))
  done
done
log "$count certificates and keys in place"
