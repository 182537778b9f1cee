#!/usr/bin/env bash
# dns: bind9, authoritative for the lab domain and its reverse zone.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

if [ "${1:-}" = uninstall ]; then
  # kubelab's zones and options go with the files kubelab placed.
  stop_units named bind9
  exit 0
fi

ensure_packages bind9 bind9-dnsutils
files=(/etc/bind/named.conf.options /etc/bind/named.conf.local /etc/bind/db.*)
named-checkconf /etc/bind/named.conf
restart_if_changed bind named "${files[@]}"
wait_for "bind9 to answer for dns0.$KUBELAB_DOMAIN on $KUBELAB_ADDRESS" 60 \
  sh -c "dig +short +time=1 +tries=1 @$KUBELAB_ADDRESS dns0.$KUBELAB_DOMAIN | grep -q ."
applied bind "${files[@]}"
