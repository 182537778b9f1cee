#!/usr/bin/env bash
# The distribution packages each role installs: the one list. The role
# scripts read it through lib.sh; the end-to-end test box's recipe
# (boxes/test-debian/bake) reads it too and puts exactly these packages, with
# their dependencies, in the apt repository it serves on the test's lab
# network, so a name that does not exist fails the bake. Sourced, never run.
#
# Every name exists under the same name in each distribution kubelab
# supports, checked against their published package lists: Debian 12
# (bookworm, main) and Debian 13 (trixie, main) by the bake itself; Ubuntu
# 24.04 (noble, main + universe; the default box bento/ubuntu-24.04) as
# recorded in tests/fixtures/packages/ubuntu-24.04.txt, which
# tests/scripts.rs holds this list against. Where a name differed it would
# be mapped here, per distribution; none does today.
#
# Only packages kubelab cannot get from a pinned release: the Kubernetes
# binaries, containerd, runc, the CNI plugins, crictl and (by default) etcd
# come from release files instead.

# dns: bind9, and dig for the step's own readiness checks.
packages_dns=(bind9 bind9-dnsutils)
# resolv: systemd-resolved is a package of its own since Debian 12 and
# Ubuntu 22.10 (Ubuntu installs it by default, Debian does not).
packages_resolv=(systemd-resolved)
# certs: openssl checks every certificate and key in place.
packages_certs=(openssl)
# lb: haproxy; keepalived only where there is a VIP (two or more LBs).
packages_lb=(haproxy)
packages_vip=(keepalived)
# etcd with `artifacts: etcd: distro`: the distribution's etcd.
packages_etcd_distro=(etcd-server etcd-client)
# registry: curl for the readiness probe; the distribution's registry when
# no release file was uploaded.
packages_registry=(curl)
packages_registry_distro=(docker-registry)
# controllers: curl for the health checks.
packages_controllers=(curl)
# workers: what kubelet and kube-proxy run (iptables, conntrack, socat) and
# modprobe (kmod).
packages_workers=(curl conntrack iptables socat kmod)
# routes on a worker: the rule that masquerades what leaves the pod range
# (before the workers phase has run, as on `lab up --only routes`).
packages_pod_egress=(iptables)
# workers with `kube_proxy.mode: nftables`: kube-proxy drives the `nft` tool.
packages_nftables=(nftables)

# all_role_packages : every package above, once each, one a line.
all_role_packages() {
  printf '%s\n' "${packages_dns[@]}" "${packages_resolv[@]}" "${packages_certs[@]}" \
    "${packages_lb[@]}" "${packages_vip[@]}" "${packages_etcd_distro[@]}" \
    "${packages_registry[@]}" "${packages_registry_distro[@]}" \
    "${packages_controllers[@]}" "${packages_workers[@]}" "${packages_pod_egress[@]}" "${packages_nftables[@]}" | sort -u
}
