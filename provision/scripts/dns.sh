#!/usr/bin/env bash
# dns: bind9, authoritative for the lab domain and its reverse zone. A
# running bind9 whose zones changed (workers scaled) is reloaded, not
# restarted, and the step waits until it serves the new serials.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

if [ "${1:-}" = uninstall ]; then
  # kubelab's zones and options go with the files kubelab placed.
  stop_units named bind9
  exit 0
fi

ensure_packages "${packages_dns[@]}"
files=(/etc/bind/named.conf.options /etc/bind/named.conf.local /etc/bind/db.*)
named-checkconf /etc/bind/named.conf
systemctl enable named >/dev/null 2>&1 || systemctl enable named
if changed bind "${files[@]}" || ! systemctl is-active --quiet named; then
  if systemctl is-active --quiet named; then
    log "reloading named (rndc reload)"
    rndc reload >/dev/null || systemctl restart named
  else
    log "restarting named"
    systemctl reset-failed named >/dev/null 2>&1 || true
    systemctl restart --no-block named
  fi
fi
wait_for "bind9 to answer for dns0.$KUBELAB_DOMAIN on $KUBELAB_ADDRESS" 60 \
  sh -c "dig +short +time=1 +tries=1 @$KUBELAB_ADDRESS dns0.$KUBELAB_DOMAIN | grep -q ."
# serves_serial ZONE FILE : bind9 answers ZONE's SOA with FILE's serial.
serves_serial() {
  local want
  want=$(awk '$2 == ";" && $3 == "serial" { print $1 }' "$2")
  [ "$(dig +short +time=1 +tries=1 @"$KUBELAB_ADDRESS" SOA "$1" | awk '{ print $3 }')" = "$want" ]
}
# The lab's zones and their files, as named.conf.local declares them.
while read -r zone zone_file; do
  wait_for "bind9 to serve $zone with the serial of $zone_file" 60 serves_serial "$zone" "$zone_file"
done < <(awk -F'"' '/^zone / { zone = $2 } /^[[:space:]]*file / { print zone, $2 }' /etc/bind/named.conf.local)
applied bind "${files[@]}"
