#!/usr/bin/env bash
# Shared helpers for kubelab's role scripts. Sourced, never run.
# kubelab uploads the node's files for a phase to their final paths, then runs
# `<role>.sh` as root with KUBELAB_NODE, KUBELAB_ADDRESS, KUBELAB_DOMAIN and
# KUBELAB_PHASE set. Every script is safe to run twice. `<role>.sh uninstall`
# (kubelab lab destroy on a static lab) stops and disables what the script
# started and removes its data; kubelab then deletes every file it placed.

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

# stop_units UNIT... : stop and disable each UNIT (`uninstall`); a unit that
# does not exist is no error.
stop_units() {
  local unit
  for unit in "$@"; do
    if systemctl cat "$unit" >/dev/null 2>&1; then
      log "stopping and disabling $unit"
      systemctl disable --now "$unit" >/dev/null 2>&1 || systemctl stop "$unit" || true
    fi
  done
}

# Release files kubelab uploads from its download cache.
artifacts_dir=/var/lib/kubelab/artifacts

# artifact GLOB : the last file of the artifacts directory matching GLOB, or
# nothing.
artifact() {
  local f found=
  # shellcheck disable=SC2086 # GLOB is a pattern on purpose
  for f in "$artifacts_dir"/$1; do
    [ -e "$f" ] && found=$f
  done
  printf '%s' "$found"
}

# require_artifacts GLOB... : die naming every release file that is missing,
# before anything is installed.
require_artifacts() {
  local missing=() glob
  for glob in "$@"; do
    [ -n "$(artifact "$glob")" ] || missing+=("$glob")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  die "missing release binaries for the $KUBELAB_PHASE phase on $KUBELAB_NODE: ${missing[*]} (looked in $artifacts_dir). kubelab copies them to the nodes whose phase needs them from its download cache (\`kubelab artifacts fetch\`): run \`kubelab lab up\` again so the step sends them"
}

# install_binary SRC DEST : install SRC as the executable DEST when it differs.
install_binary() {
  if ! cmp -s "$1" "$2"; then
    log "installing $2"
    install -D -m 0755 "$1" "$2"
  fi
}

# units_active UNIT... : true when every UNIT is active.
units_active() {
  local unit
  for unit in "$@"; do
    systemctl is-active --quiet "$unit" || return 1
  done
}

# What the phases that run kubectl on the first controller (addons,
# workload) use: the admin kubeconfig, the manifests and the pod ranges.
cluster=/var/lib/kubelab/cluster
kubectl_bin=/usr/local/bin/kubectl

# need_kubectl : die unless kubectl and the admin kubeconfig are in place.
need_kubectl() {
  [ -x "$kubectl_bin" ] ||
    die "no $kubectl_bin on $KUBELAB_NODE: the controllers phase installs it (\`kubelab lab up --from controllers\`)"
  [ -f "$cluster/admin.kubeconfig" ] ||
    die "no $cluster/admin.kubeconfig on $KUBELAB_NODE: the addons phase places it (\`kubelab lab up --from addons\`)"
}

# k ARGS... : kubectl as the lab's admin, through the API name.
k() { "$kubectl_bin" --kubeconfig "$cluster/admin.kubeconfig" --request-timeout=20s "$@"; }
