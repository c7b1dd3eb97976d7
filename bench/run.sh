#!/usr/bin/env bash
# `xbuild run examples/cowsay --target aarch64-linux`, warm (the image and
# its root filesystem cached), against `podman run` of the same image (its
# docker-archive loaded into a private podman store once), in the same
# run. xbuild runs it through the emulator it fetched into its cache,
# registered in the sandbox's own binfmt_misc (and, a second row, through
# the host's registration, as podman does).
#
# Goal: faster than podman.
#
# usage: bench/run.sh        (RUNS=10 by default)
# env:   RUNS, TARGET (default aarch64-linux), CARGO_TARGET_DIR
# Needs: hyperfine, podman, runc, qemu-user-static (scripts/setup.sh); root.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
runs=${RUNS:-10}
target=${TARGET:-aarch64-linux}
for tool in hyperfine podman; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing (scripts/setup.sh)" >&2; exit 1; }
done
cargo build --release --quiet
xbuild="${CARGO_TARGET_DIR:-$repo/target}/release/xbuild"

work=$(mktemp -d /tmp/xbuild-bench-run.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Warm both: the image built, xbuild's root filesystem made, podman's
# image loaded.
"$xbuild" run "$repo/examples/cowsay" --target "$target" --out "$work/out" --cache-dir "$work/cache" -q >/dev/null
platform=$("$xbuild" targets --json | perl -MJSON::PP -e '
    my $want = shift; local $/; my $all = decode_json(<STDIN>);
    for my $p (@$all) { next unless $p->{name} eq $want; my $o = $p->{oci};
        print join("/", $o->{os}, $o->{architecture}, defined $o->{variant} ? ($o->{variant}) : ()); }' "$target")
podman=(podman --root "$work/podman/root" --runroot "$work/podman/run" --tmpdir "$work/podman/tmp"
    --storage-driver vfs --cgroup-manager cgroupfs --runtime runc --events-backend none)
"${podman[@]}" load -q -i "$work/out/$target.tar" >/dev/null

hyperfine --runs "$runs" --warmup 1 --export-json "$work/run.json" \
    -n "xbuild run" "$xbuild run $repo/examples/cowsay --target $target --out $work/out --cache-dir $work/cache -q" \
    -n "xbuild run (host binfmt)" "XBUILD_RUN_BINFMT=host $xbuild run $repo/examples/cowsay --target $target --out $work/out --cache-dir $work/cache -q" \
    -n "podman run" "${podman[*]} run --rm --pull never --network none --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 --platform $platform cowsay-hello-world:latest" \
    >/dev/null

printf '\ncowsay for %s, warm; %s runs, medians; load %s\n\n' "$target" "$runs" "$(cut -d' ' -f1-3 /proc/loadavg)"
perl -MJSON::PP -e '
    local $/; my $r = decode_json(<STDIN>)->{results};
    print "| command | median (s) | min (s) | max (s) |\n|---|---:|---:|---:|\n";
    for my $c (@$r) { printf "| %s | %.3f | %.3f | %.3f |\n", $c->{command}, $c->{median}, $c->{min}, $c->{max}; }
    my ($x, $h, $p) = map { $_->{median} } @$r;
    printf "\ngoal, faster than podman: %s (%.1fx)\n", ($x < $p ? "met" : "missed"), $p / $x;' <"$work/run.json"
