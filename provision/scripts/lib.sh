#!/usr/bin/env bash
# Shared helpers for kubelab's role scripts. Sourced, never run.
# kubelab uploads the node's files for a phase to their final paths, then runs
# `<role>.sh` as root with KUBELAB_NODE, KUBELAB_ADDRESS, KUBELAB_DOMAIN and
# KUBELAB_PHASE set. Every script is safe to run twice.

applied_dir=/var/lib/kubelab/applied

log() { printf '[%s %s] %s\n' "${KUBELAB_NODE:-?}" "${KUBELAB_PHASE:-?}" "$*"; }

die() { log "error: $*" >&2; exit 1; }

# changed NAME FILE... : true when the files differ from the last `applied NAME`.
changed() {
  local name=$1; shift
  local sums
  sums=$(sha256sum "$@" 2>/dev/null || true)
  [ "$sums" != "$(cat "$applied_dir/$name.sha256" 2>/dev/null || true)" ]
}

# applied NAME FILE... : remember the files as applied.
applied() {
  local name=$1; shift
  mkdir -p "$applied_dir"
  sha256sum "$@" >"$applied_dir/$name.sha256"
}

# wait_for WHAT SECONDS CMD... : poll CMD until it succeeds, or fail naming WHAT.
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  log "waiting for $what (up to ${seconds}s)"
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "last attempt: $*"
      "$@" || true
      die "timed out after ${seconds}s waiting for $what"
    fi
    sleep 0.5
  done
  log "ready: $what"
}

# ensure_packages PKG... : install only the missing ones.
ensure_packages() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# restart_if_changed NAME UNIT FILE... : (re)start UNIT when its files changed
# or it is not running; enable it either way.
restart_if_changed() {
  local name=$1 unit=$2; shift 2
  systemctl daemon-reload
  systemctl enable "$unit" >/dev/null 2>&1 || systemctl enable "$unit"
  if changed "$name" "$@" || ! systemctl is-active --quiet "$unit"; then
    log "restarting $unit"
    systemctl restart --no-block "$unit"
  fi
}
