#!/usr/bin/env bash
# The peer of `xbuild build examples/cowsay --target aarch64-linux`:
# mmdebstrap (extract variant, no emulation) into a tarball, then umoci turns
# it into a one-layer OCI image with the same command.
# usage: bench/peer.sh WORKDIR [SOURCES]
set -euo pipefail

work=$1
sources=${2:-/etc/apt/sources.list.d/debian.sources}

rm -rf "$work"
mkdir -p "$work"
mmdebstrap --quiet --variant=extract --architectures=arm64 --include=cowsay \
    bookworm "$work/out.tar" "$sources"
umoci init --layout "$work/oci"
umoci new --image "$work/oci:latest"
umoci raw add-layer --image "$work/oci:latest" "$work/out.tar"
umoci config --image "$work/oci:latest" --architecture arm64 \
    --config.cmd cowsay --config.cmd hello --config.cmd world
