# shellcheck shell=bash
# Shared by the e2e stand-ins `vagrant` and `VBoxManage`: each "VM" is a
# systemd-nspawn container booted with systemd on an overlay of the test box,
# in a network namespace of its own. Sourced, not run.
#
# Environment (set by the e2e fixture in tests/support/):
#   KUBELAB_E2E_PREFIX  starts every name this creates: netns, veth, cgroup, dirs
#   KUBELAB_E2E_DIR     this run's directory: one directory per VM under vms/
#   KUBELAB_E2E_BOX     the baked box (boxes/test-debian/bake): rootfs/, repo/, vagrant_key
# The caller runs in the "hypervisor" network namespace, which holds the
# bridge ${KUBELAB_E2E_PREFIX}br with the host-only address.

prefix=${KUBELAB_E2E_PREFIX:?KUBELAB_E2E_PREFIX: the e2e stand-in runs only under the e2e fixture}
run_dir=${KUBELAB_E2E_DIR:?KUBELAB_E2E_DIR must name the run directory}
box=${KUBELAB_E2E_BOX:?KUBELAB_E2E_BOX must name the baked box directory}
bridge="${prefix}br"
key="$box/vagrant_key"
# shellcheck disable=SC2034 # used by the scripts that source this
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
# memory: the Vagrantfile's vb.memory becomes the machine's limit.
cgroup_hierarchies=(systemd unified freezer memory)
# Every VirtualBox NAT adapter has this address; no route joins two of them.
nat_address=10.0.2.15/24
nat_gateway=10.0.2.2

now_ms() { date +%s%3N; }
say() { echo "$*" >&2; }
die() { say "e2e stand-in: $*"; exit 1; }

vm_dir() { echo "$run_dir/vms/$1"; }
netns_of() { echo "$prefix-$1"; }
cgroup_of() { echo "/sys/fs/cgroup/$1/$prefix-$2"; }

ssh_options=(
  -i "$key" -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=3
  -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
)

# The PID of the VM's systemd-nspawn, if it runs (checked by its command line,
# so a reused PID is never taken for it).
nspawn_pid() {
  local d pid
  d=$(vm_dir "$1")
  [ -f "$d/pid" ] || return 1
  pid=$(cat "$d/pid")
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-D $d/root " || return 1
  echo "$pid"
}

# The process boot started is alive (while it is still becoming nspawn too).
launched() {
  local pid state
  pid=$(cat "$(vm_dir "$1")/pid")
  state=$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null) || return 1
  [ "$state" != Z ]
}

is_frozen() {
  local f
  f="$(cgroup_of freezer "$1")/freezer.state"
  [ -f "$f" ] && [ "$(cat "$f")" != THAWED ]
}

# VirtualBox's names for the states kubelab reads.
vm_state() {
  if [ ! -f "$(vm_dir "$1")/created" ]; then echo not_created
  elif ! nspawn_pid "$1" >/dev/null; then echo poweroff
  elif is_frozen "$1"; then echo paused
  else echo running
  fi
}

set_freezer() { # VM FROZEN|THAWED
  local f deadline
  f="$(cgroup_of freezer "$1")/freezer.state"
  [ -f "$f" ] || die "$1 has no freezer cgroup (is it running?)"
  echo "$2" >"$f"
  deadline=$(($(now_ms) + 10000))
  until [ "$(cat "$f")" = "$2" ]; do
    [ "$(now_ms)" -lt "$deadline" ] || die "$1: freezer did not reach $2 in 10 s"
    sleep 0.05
  done
}

# The network a VirtualBox VM would have: eth1 on the host-only bridge with
# its Vagrantfile address, eth0 the NAT adapter that reaches no other VM.
network_up() { # VM ADDRESS
  local vm=$1 address=$2 ns veth
  ns=$(netns_of "$vm")
  veth=$(cat "$(vm_dir "$vm")/veth")
  [ -e "/run/netns/$ns" ] && return 0
  ip link show "$bridge" >/dev/null 2>&1 ||
    die "no bridge $bridge in this network namespace: run kubelab with nsenter --net=/run/netns/$prefix-hv"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "$veth" type veth peer name eth1 netns "$ns"
  ip link set "$veth" master "$bridge" up
  ip -n "$ns" addr add "$address/24" dev eth1
  ip -n "$ns" link set eth1 up
  ip -n "$ns" link add eth0 type veth peer name "${prefix}nat"
  ip -n "$ns" addr add "$nat_address" dev eth0
  ip -n "$ns" link set "${prefix}nat" up
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "$nat_gateway" dev eth0
}

remove_cgroups() {
  local h cg
  for h in "${cgroup_hierarchies[@]}"; do
    cg=$(cgroup_of "$h" "$1")
    [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  return 0
}

# Boots the VM's overlay with systemd as PID 1, the launcher in cgroups of its
# own (no systemd on the host: nspawn --keep-unit puts the payload under the
# caller's cgroup, which all VMs would otherwise share).
boot() { # VM HOSTNAME MEMORY_MB
  local vm=$1 hostname=$2 memory_mb=$3 d h cgs=()
  d=$(vm_dir "$vm")
  remove_cgroups "$vm"
  for h in "${cgroup_hierarchies[@]}"; do
    mkdir -p "$(cgroup_of "$h" "$vm")"
    cgs+=("$(cgroup_of "$h" "$vm")")
  done
  echo $((memory_mb * 1024 * 1024)) >"$(cgroup_of memory "$vm")/memory.limit_in_bytes"
  # Not our child's child for long: setsid detaches it from kubelab's process
  # group, so a Ctrl-C of kubelab does not reach the VM.
  # shellcheck disable=SC2016 # expanded by the inner shell
  setsid bash -c '
    for cg in "$1" "$2" "$3" "$4"; do echo $$ >"$cg/cgroup.procs"; done
    shift 4
    SYSTEMD_NSPAWN_API_VFS_WRITABLE=network exec "$@"' launcher "${cgs[@]}" \
    systemd-nspawn --boot --keep-unit --register=no --quiet \
    -D "$d/root" --machine="$vm" --hostname="$hostname" \
    --network-namespace-path="/run/netns/$(netns_of "$vm")" \
    --capability=CAP_NET_ADMIN,CAP_NET_RAW \
    --resolv-conf=off --timezone=off --link-journal=no --console=read-only \
    </dev/null >"$d/console.log" 2>&1 &
  echo $! >"$d/pid"
}

# Waits until systemd inside says running (or degraded) and sshd lets the
# vagrant user in: what `vagrant up` waits for on a real VM.
wait_ready() { # VM ADDRESS
  local vm=$1 address=$2 deadline state
  deadline=$(($(now_ms) + ${KUBELAB_E2E_BOOT_TIMEOUT_MS:-90000}))
  while :; do
    if ! launched "$vm"; then
      tail -n 20 "$(vm_dir "$vm")/console.log" >&2
      die "$vm stopped while booting (console: $(vm_dir "$vm")/console.log)"
    fi
    state=$(ssh "${ssh_options[@]}" "vagrant@$address" systemctl is-system-running --wait 2>/dev/null) || true
    case $state in
      running) return 0 ;;
      degraded)
        say "$vm: systemd is degraded; failed units:"
        ssh "${ssh_options[@]}" "vagrant@$address" systemctl --failed --no-legend >&2 || true
        return 0 ;;
    esac
    [ "$(now_ms)" -lt "$deadline" ] || die "$vm: not ready over SSH at $address after $((${KUBELAB_E2E_BOOT_TIMEOUT_MS:-90000} / 1000)) s (systemd says: ${state:-no answer})"
    sleep 0.2
  done
}

# Orderly poweroff (nspawn turns SIGTERM into the container's halt signal),
# then the overlay is unmounted. Thaws a paused VM first.
stop_vm() {
  local vm=$1 d pid deadline
  d=$(vm_dir "$vm")
  if pid=$(nspawn_pid "$vm"); then
    is_frozen "$vm" && set_freezer "$vm" THAWED
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$(($(now_ms) + 30000))
    while nspawn_pid "$vm" >/dev/null; do
      if [ "$(now_ms)" -ge "$deadline" ]; then
        [ -z "${killed:-}" ] || die "$vm: nspawn $pid survived SIGKILL for 30 s"
        say "$vm: no poweroff after 30 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        local killed=1
        deadline=$(($(now_ms) + 30000))
      fi
      sleep 0.1
    done
  fi
  if mountpoint -q "$d/root"; then umount "$d/root"; fi
  remove_cgroups "$vm"
}

mount_root() {
  local d
  d=$(vm_dir "$1")
  mountpoint -q "$d/root" && return 0
  rm -rf "$d/work" && mkdir -p "$d/work"
  mount -t overlay overlay -o "lowerdir=$box/rootfs,upperdir=$d/upper,workdir=$d/work" "$d/root"
}
