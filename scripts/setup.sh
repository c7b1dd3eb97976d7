#!/usr/bin/env bash
# Installs what xbuild's demo and tests need on a Debian 12 machine (as root),
# and registers qemu-user with binfmt_misc so foreign-architecture images run
# here. Safe to run more than once.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
    podman runc uidmap qemu-user-static skopeo umoci mmdebstrap arch-test hyperfine \
    gnupg gpgv dpkg-dev xz-utils libssl-dev pkg-config time ca-certificates \
    gcc g++ libc6-dev curl make cmake autoconf automake libtool bzip2 file patch \
    flex bison tmux nginx docker-registry openssl passwd

# nginx and docker-registry are for the remote-cache tests, which start their
# own on free ports of 127.0.0.1: stop and disable the system services the
# packages start, so nothing else holds ports or state.
for service in nginx docker-registry; do
    if command -v systemctl >/dev/null; then
        systemctl disable "$service" >/dev/null 2>&1 || true
    fi
    if [ -d /run/systemd/system ]; then
        systemctl stop "$service" >/dev/null 2>&1 || true
    elif command -v service >/dev/null; then
        service "$service" stop >/dev/null 2>&1 || true
    fi
done

if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
for arch in aarch64 arm s390x ppc64le riscv64; do
    # Registering an entry twice fails: skip the ones already there.
    [ -e "/proc/sys/fs/binfmt_misc/qemu-${arch}" ] && continue
    cat "/usr/lib/binfmt.d/qemu-${arch}.conf" > /proc/sys/fs/binfmt_misc/register
done
grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64
