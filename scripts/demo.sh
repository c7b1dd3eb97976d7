#!/usr/bin/env bash
# The main job: set up this machine, build the cowsay example image for
# aarch64-linux (arm64) with xbuild, load it into podman and run it, then
# run it again with `xbuild run` (no container engine).
# Usage: bash scripts/demo.sh [target]   (default aarch64-linux)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-aarch64-linux}

bash scripts/setup.sh
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
cargo build --release --quiet

./target/release/xbuild build examples/cowsay --target "$target"

platform=$(./target/release/xbuild targets --json | python3 -c '
import json, sys
wanted = sys.argv[1]
for p in json.load(sys.stdin):
    if p["name"] == wanted:
        o = p["oci"]
        print("/".join([o["os"], o["architecture"]] + ([o["variant"]] if o.get("variant") else [])))
' "$target")

podman=(podman --storage-driver vfs --cgroup-manager cgroupfs --runtime runc)
"${podman[@]}" load -i "examples/cowsay/result/${target}.tar"
"${podman[@]}" run --rm --platform "$platform" --network none \
    --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 \
    cowsay-hello-world:latest

# The same image run by xbuild itself, with no container engine.
./target/release/xbuild run examples/cowsay --target "$target"
