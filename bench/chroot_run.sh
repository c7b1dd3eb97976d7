#!/usr/bin/env bash
# Runs a command in a foreign-architecture Debian root, the way an emulated
# container build does: every binary of the root runs through qemu-user
# (binfmt_misc, F flag). Meant to be started inside a fresh mount and PID
# namespace (`unshare --mount --pid --fork --kill-child`), so the mounts
# and every process it leaves (a hung emulated process included) vanish
# with it.
#
# usage: chroot_run.sh ROOT COMMAND [ARG...]
# The command runs with PATH=/opt/rust/bin:/usr/bin:/bin, HOME=/root and
# CARGO_HOME=/root/.cargo, in /work/hello-rust.
set -euo pipefail
root=$1
shift
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
exec chroot "$root" /usr/bin/env -i \
    PATH=/opt/rust/bin:/usr/bin:/bin HOME=/root CARGO_HOME=/root/.cargo \
    /bin/sh -c 'cd /work/hello-rust && exec "$@"' sh "$@"
