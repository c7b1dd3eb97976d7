#!/usr/bin/env bash
# Pushing cowsay for three targets to a registry (Debian's docker-registry,
# started here on 127.0.0.1): `xbuild push` of one build's OCI layout (three
# manifests and one index) against `skopeo copy` of the same images (one
# single-image layout per target: skopeo copies one image per command),
# the peer a user would pick, in the same run. First push: each run into
# new repositories, with an empty xbuild cache (so nothing is mounted from
# an earlier push); second push: the same push again.
#
# Goal: the first push at least as fast as skopeo; the second under 0.3 s.
#
# usage: bench/push.sh        (RUNS=5 by default)
# env:   RUNS, TARGETS (default "aarch64-linux armv7-linux s390x-linux"),
#        CARGO_TARGET_DIR
# Needs: docker-registry, skopeo, perl; the host's apt mirror.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
runs=${RUNS:-5}
targets=${TARGETS:-aarch64-linux armv7-linux s390x-linux}
for tool in docker-registry skopeo perl; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing (scripts/setup.sh)" >&2; exit 1; }
done
cargo build --release --quiet
xbuild="${CARGO_TARGET_DIR:-$repo/target}/release/xbuild"

work=$(mktemp -d /tmp/xbuild-bench-push.XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1:0")->sockport'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "error: nothing listens on $1" >&2; exit 1; }
now() { perl -MTime::HiRes=time -e 'printf "%.4f", time'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

port=$(free_port)
mkdir -p "$work/registry"
cat > "$work/registry/config.yml" <<CONF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry/storage
http:
  addr: 127.0.0.1:$port
  secret: bench
CONF
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
pid=$!
wait_port "$port"
host=127.0.0.1:$port

# The images: one layout with every target (xbuild's input) and one
# layout per target (skopeo's), from one warm cache.
target_args=()
for target in $targets; do target_args+=(--target "$target"); done
"$xbuild" build "$repo/examples/cowsay" "${target_args[@]}" --out "$work/all" --cache-dir "$work/cache" -q
for target in $targets; do
    "$xbuild" build "$repo/examples/cowsay" --target "$target" --out "$work/one-$target" --cache-dir "$work/cache" -q
done
bytes=$(du -sb "$work/all/oci/blobs" | cut -f1)

xb_first=() xb_second=() sk_first=() sk_second=()
for run in $(seq "$runs"); do
    # xbuild: one command, an empty cache of its own.
    start=$(now)
    "$xbuild" push "$repo/examples/cowsay" "$host/xb$run/cowsay:multi" --out "$work/all" --cache-dir "$work/push-cache-$run" -q
    end=$(now); xb_first+=("$(perl -e "print $end - $start")")
    start=$(now)
    "$xbuild" push "$repo/examples/cowsay" "$host/xb$run/cowsay:multi" --out "$work/all" --cache-dir "$work/push-cache-$run" -q
    end=$(now); xb_second+=("$(perl -e "print $end - $start")")
    # skopeo: one copy per target.
    start=$(now)
    for target in $targets; do
        skopeo copy -q --dest-tls-verify=false "oci:$work/one-$target/oci" "docker://$host/sk$run/cowsay:$target"
    done
    end=$(now); sk_first+=("$(perl -e "print $end - $start")")
    start=$(now)
    for target in $targets; do
        skopeo copy -q --dest-tls-verify=false "oci:$work/one-$target/oci" "docker://$host/sk$run/cowsay:$target"
    done
    end=$(now); sk_second+=("$(perl -e "print $end - $start")")
done

m() { printf '%s\n' "$@" | median; }
printf '\ncowsay for %s (%s bytes of blobs); %s runs, medians; load %s\n\n' "$targets" "$bytes" "$runs" "$(cut -d' ' -f1-3 /proc/loadavg)"
echo "| push | xbuild push (s) | skopeo copy (s) | goal |"
echo "|---|---:|---:|---|"
xf=$(m "${xb_first[@]}"); sf=$(m "${sk_first[@]}"); xs=$(m "${xb_second[@]}"); ss=$(m "${sk_second[@]}")
printf '| first, new repositories | %.2f | %.2f | %s |\n' "$xf" "$sf" "$(perl -e 'print $ARGV[0] <= $ARGV[1] ? "met (≤ skopeo)" : "missed (≤ skopeo)"' "$xf" "$sf")"
printf '| second, same push | %.2f | %.2f | %s |\n' "$xs" "$ss" "$(perl -e 'print $ARGV[0] < 0.3 ? "met (< 0.3 s)" : "missed (< 0.3 s)"' "$xs")"
