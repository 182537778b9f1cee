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

# Package installs: never a question, never a race, never left half done.
#
# Order: the engine places a step's files before its script runs (one SSH
# round trip), so a package that owns one of them as a conffile (bind9's
# named.conf.options and named.conf.local, haproxy's haproxy.cfg) finds it
# already there. dpkg then asks whether to keep it, and with no terminal the
# install dies. --force-confold keeps kubelab's file (the package's copy is
# left beside it as .dpkg-dist); --force-confdef takes the default for every
# conffile kubelab did not place. Installing first and placing after would
# need a second round trip per step and would still start the daemons once on
# the package's config.
#
# No daemon starts from a package's own postinst while kubelab installs
# (policy-rc.d answers 101, as in a chroot): haproxy would start before the
# node may bind the VIP, crash-loop into systemd's start limit and refuse
# kubelab's restart (audit M1); named, keepalived, etcd and docker-registry
# would start on the package's config. Each role script starts its daemon
# with kubelab's config once the node is ready for it.
#
# apt, debconf, dpkg and needrestart (Ubuntu) are all told not to ask. The
# dpkg lock that apt-daily and unattended-upgrades hold on a VM's first boot
# is waited for (up to 5 minutes), then its holder
# is named. `apt-get update` runs once per step, retried on a failure. A
# package a killed run left half installed is repaired before anything else.

# shellcheck source=packages.sh
. "$(dirname "${BASH_SOURCE[0]}")/packages.sh"

apt_env=(
  DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true
  NEEDRESTART_SUSPEND=1 NEEDRESTART_MODE=l APT_LISTCHANGES_FRONTEND=none
  UCF_FORCE_CONFFOLD=1
)
dpkg_conffile_options=(--force-confdef --force-confold)
apt_options=(
  -q -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
  -o DPkg::Lock::Timeout=60 -o Dpkg::Use-Pty=0 -o APT::Color=0
)
apt_lock_wait=300
apt_lock_files=(/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock)
apt_retry_delay=3
apt_lists_fresh=
policy_rc=/usr/sbin/policy-rc.d
policy_rc_mark='# kubelab: no daemon starts from a package while kubelab installs'

# apt_lock_holders : "PID (command line)" of each process that holds one of
# apt's or dpkg's locks (fcntl locks, as /proc/locks lists them), one a line.
apt_lock_holders() {
  local f inode pid
  for f in "${apt_lock_files[@]}"; do
    [ -e "$f" ] || continue
    inode=$(stat -c %i "$f")
    # "1: POSIX  ADVISORY  WRITE PID MAJ:MIN:INODE START END"; a waiter's
    # line has "->" after the number and holds nothing.
    awk -v inode="$inode" '$2 != "->" { split($6, id, ":"); if (id[3] == inode) print $5 }' /proc/locks
  done | sort -u | while read -r pid; do
    [ "$pid" != "$$" ] || continue
    printf '%s (%s)\n' "$pid" "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-100 | sed 's/ *$//')"
  done
}

# wait_for_apt_locks : until no other process holds apt's or dpkg's locks;
# fails naming the holder after $apt_lock_wait seconds.
wait_for_apt_locks() {
  local deadline=$((SECONDS + apt_lock_wait)) holders told=
  while holders=$(apt_lock_holders) && [ -n "$holders" ]; do
    holders=$(paste -sd ';' <<<"$holders")
    if [ -z "$told" ]; then
      log "waiting up to ${apt_lock_wait}s for apt's lock, held by pid $holders"
      told=1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      die "apt's lock on $KUBELAB_NODE is still held after ${apt_lock_wait}s by pid $holders. On a new VM that is apt-daily or unattended-upgrades: let it finish or stop it (\`kubelab lab ssh $KUBELAB_NODE -- sudo systemctl stop unattended-upgrades apt-daily.service\`), then run \`kubelab lab up\` again"
    fi
    sleep 1
  done
  [ -z "$told" ] || log "apt's lock is free"
}

# hold_service_starts / release_service_starts : no package's postinst
# starts or restarts a daemon in between. A policy-rc.d kubelab did not
# write is left as it is, and decides.
hold_service_starts() {
  [ -e "$policy_rc" ] && return 0
  printf '#!/bin/sh\n%s\nexit 101\n' "$policy_rc_mark" >"$policy_rc"
  chmod 755 "$policy_rc"
  trap release_service_starts EXIT
}
release_service_starts() {
  if [ -f "$policy_rc" ] && grep -qxF "$policy_rc_mark" "$policy_rc"; then
    rm -f "$policy_rc"
  fi
}

# apt_run WHAT CMD... : runs an apt or dpkg command with nothing to ask,
# once the locks are free; its output goes to the step's log. Fails naming
# WHAT, the node and apt's last lines.
apt_run() {
  local what=$1 out rc=0
  shift
  out=$(mktemp)
  wait_for_apt_locks
  hold_service_starts
  env "${apt_env[@]}" "$@" </dev/null >"$out" 2>&1 || rc=$?
  cat "$out"
  if [ "$rc" -ne 0 ]; then
    local last
    last=$(grep -v '^[[:space:]]*$' "$out" | tail -n 8)
    rm -f "$out"
    die "$what failed on $KUBELAB_NODE (exit $rc). apt's last lines:
$last"
  fi
  rm -f "$out"
}

# apt_update : fresh package lists, once per step; a failure (a source that
# did not answer) is retried twice.
apt_update() {
  [ -z "$apt_lists_fresh" ] || return 0
  local attempt out rc
  for attempt in 1 2 3; do
    wait_for_apt_locks
    rc=0
    out=$(env "${apt_env[@]}" apt-get "${apt_options[@]}" update </dev/null 2>&1) || rc=$?
    printf '%s\n' "$out"
    if [ "$rc" -eq 0 ] && ! grep -qE '^(E:|W: Failed to fetch|W: Some index files failed)' <<<"$out"; then
      apt_lists_fresh=1
      return 0
    fi
    log "apt-get update failed (attempt $attempt of 3): $(grep -E '^(E|W|Err):' <<<"$out" | tail -n 3 | paste -sd ' ' -)"
    [ "$attempt" -eq 3 ] || sleep $((attempt * apt_retry_delay))
  done
  die "apt-get update failed 3 times on $KUBELAB_NODE: $(grep -E '^(E|W|Err):' <<<"$out" | tail -n 4 | paste -sd ' ' -). The node needs its package sources (/etc/apt/sources.list and sources.list.d/) to answer"
}

# half_installed : each package a killed or failed install left in a state
# other than installed or removed, one a line.
half_installed() {
  dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 2>/dev/null |
    awk '$1 !~ /^(ii|rc|un|pn)$/ { print $2 }'
}

# repair_packages : finishes what a killed or failed install left half done
# (dpkg --configure -a, then apt's fix for what it still lacks).
repair_packages() {
  local broken
  broken=$(half_installed)
  [ -n "$broken" ] || return 0
  log "repairing what an interrupted install left half done: $(paste -sd ' ' <<<"$broken")"
  apt_run "finishing the interrupted install of $(paste -sd ' ' <<<"$broken")" \
    dpkg "${dpkg_conffile_options[@]}" --configure -a
  if [ -n "$(half_installed)" ]; then
    apt_update
    apt_run "repairing $(half_installed | paste -sd ' ' -)" apt-get "${apt_options[@]}" install -f
  fi
  release_service_starts
}

# ensure_packages PKG... : installs the ones that are missing.
ensure_packages() {
  local missing=() unavailable=() pkg
  # One a killed run left behind would hold every daemon of the node back.
  release_service_starts
  repair_packages
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing ${missing[*]}"
  apt_update
  for pkg in "${missing[@]}"; do
    apt-cache show "$pkg" >/dev/null 2>&1 || unavailable+=("$pkg")
  done
  [ "${#unavailable[@]}" -eq 0 ] ||
    die "no package ${unavailable[*]} in the package sources of $KUBELAB_NODE ($(grep -rhsE '^(deb |URIs:)' /etc/apt/sources.list /etc/apt/sources.list.d/ | head -n 3 | paste -sd ';' -)): the ${KUBELAB_PHASE:-?} phase needs it. Enable the archive that has it (on Ubuntu: universe), then run \`kubelab lab up\` again"
  apt_run "installing ${missing[*]}" apt-get "${apt_options[@]}" install --no-install-recommends "${missing[@]}"
  release_service_starts
}

# restart_if_changed NAME UNIT FILE... : (re)start UNIT when its files changed
# or it is not running; enable it either way.
restart_if_changed() {
  local name=$1 unit=$2; shift 2
  systemctl daemon-reload
  systemctl enable "$unit" >/dev/null 2>&1 || systemctl enable "$unit"
  if changed "$name" "$@" || ! systemctl is-active --quiet "$unit"; then
    log "restarting $unit"
    # A start limit hit before kubelab's config was in place would refuse
    # this restart silently.
    systemctl reset-failed "$unit" >/dev/null 2>&1 || true
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

# artifact GLOB : the file of the artifacts directory matching GLOB with the
# highest version (sort -V: 2.0.10 after 2.0.4), or nothing.
artifact() {
  local f found=()
  # shellcheck disable=SC2086 # GLOB is a pattern on purpose
  for f in "$artifacts_dir"/$1; do
    [ -e "$f" ] && found+=("$f")
  done
  [ "${#found[@]}" -gt 0 ] || return 0
  printf '%s\n' "${found[@]}" | sort -V | tail -n 1 | tr -d '\n'
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
