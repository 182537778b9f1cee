#!/usr/bin/env bash
# workers: containerd + runc + the CNI plugins, kubelet, kube-proxy and crictl, from
# the release files kubelab uploaded. Swap off for good, the kernel modules
# and sysctls Kubernetes networking needs, then the services.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

if [ "${1:-}" = uninstall ]; then
  stop_units kubelet kube-proxy containerd
  rm -f /usr/local/bin/kubelet /usr/local/bin/kube-proxy /usr/local/sbin/runc \
    /usr/local/bin/containerd /usr/local/bin/containerd-shim-runc-v2 /usr/local/bin/ctr
  rm -rf /var/lib/kubelet /var/lib/kube-proxy /var/lib/containerd /etc/containerd /etc/cni /opt/cni
  ip link delete cni0 2>/dev/null || true
  rm -f /etc/modules-load.d/kubelab-kubernetes.conf /etc/sysctl.d/60-kubelab-kubernetes.conf
  exit 0
fi

ensure_packages "${packages_workers[@]}"
if grep -qx 'mode: nftables' /var/lib/kube-proxy/kube-proxy-config.yaml 2>/dev/null; then
  ensure_packages "${packages_nftables[@]}"
fi

# kubelet refuses to start with swap on: off now and after a reboot.
swapoff -a
if grep -qE '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab; then
  log "commenting out swap in /etc/fstab"
  sed -i -E 's/^([^#].*[[:space:]]swap[[:space:]].*)$/# kubelab: swap off # \1/' /etc/fstab
fi

# Modules listed in the rendered modules-load.d file load at boot; load them
# now too. Where they cannot be loaded (built in, or a container), the
# sysctls below are the real test: they fail when br_netfilter is absent.
modules=/etc/modules-load.d/kubelab-kubernetes.conf
while read -r module; do
  case $module in '' | '#'*) continue ;; esac
  modprobe "$module" 2>/dev/null || [ -d "/sys/module/$module" ] ||
    log "could not load $module with modprobe; relying on the kernel having it built in"
done <"$modules"
sysctls=/etc/sysctl.d/60-kubelab-kubernetes.conf
sysctl -q -p "$sysctls" ||
  die "could not apply $sysctls: the kernel lacks br_netfilter or ip_forward cannot be set here"
applied worker-kernel "$modules" "$sysctls"

release_files=(kubelet kube-proxy 'containerd-*-linux-*.tar.gz' 'runc.*' 'cni-plugins-linux-*-v*.tgz' 'crictl-v*-linux-*.tar.gz')
require_artifacts "${release_files[@]}"
install_binary "$(artifact kubelet)" /usr/local/bin/kubelet
install_binary "$(artifact kube-proxy)" /usr/local/bin/kube-proxy
install_binary "$(artifact 'runc.*')" /usr/local/sbin/runc
containerd_release=$(artifact 'containerd-*-linux-*.tar.gz')
if changed containerd-release "$containerd_release"; then
  tar -xzf "$containerd_release" -C /usr/local bin/
  applied containerd-release "$containerd_release"
fi
cni_release=$(artifact 'cni-plugins-linux-*-v*.tgz')
if changed cni-release "$cni_release"; then
  mkdir -p /opt/cni/bin
  tar -xzf "$cni_release" -C /opt/cni/bin
  applied cni-release "$cni_release"
fi
# crictl, to look at what kubelet runs; /etc/crictl.yaml points it at
# containerd's socket.
crictl_release=$(artifact 'crictl-v*-linux-*.tar.gz')
if changed crictl-release "$crictl_release" || [ ! -x /usr/local/bin/crictl ]; then
  tar -xzf "$crictl_release" -C /usr/local/bin crictl
  applied crictl-release "$crictl_release"
fi

unit_dir=/etc/systemd/system
containerd=("$unit_dir/containerd.service" /etc/containerd/config.toml /usr/local/bin/containerd /usr/local/sbin/runc)
if [ -d /etc/containerd/certs.d ]; then
  mapfile -t -O "${#containerd[@]}" containerd < <(find /etc/containerd/certs.d -type f | sort)
fi
kubelet=("$unit_dir/kubelet.service" /usr/local/bin/kubelet /var/lib/kubelet/kubelet-config.yaml /var/lib/kubelet/kubeconfig /var/lib/kubelet/*.pem /etc/cni/net.d/*)
proxy=("$unit_dir/kube-proxy.service" /usr/local/bin/kube-proxy /var/lib/kube-proxy/kube-proxy-config.yaml /var/lib/kube-proxy/kubeconfig)
restart_if_changed containerd containerd "${containerd[@]}"
wait_for "containerd to serve its socket" 60 test -S /run/containerd/containerd.sock
restart_if_changed kubelet kubelet "${kubelet[@]}"
restart_if_changed kube-proxy kube-proxy "${proxy[@]}"
# kubelet's health endpoint is on loopback by default, never on the NAT address.
wait_for "kubelet /healthz on 127.0.0.1:10248" 120 curl -fsS http://127.0.0.1:10248/healthz
wait_for "kube-proxy /healthz on $KUBELAB_ADDRESS:10256" 60 curl -fsS "http://$KUBELAB_ADDRESS:10256/healthz"
applied containerd "${containerd[@]}"
applied kubelet "${kubelet[@]}"
applied kube-proxy "${proxy[@]}"
