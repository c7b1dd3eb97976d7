#!/usr/bin/env bash
# The shared cache, measured in one run: cowsay and examples/hello-rust on
# three targets, built by machine A from an empty cache (the upstream
# peer: everything downloaded and built), then by machine B from an empty
# cache with only a prewarmed remote — over WebDAV (nginx) and over an OCI
# registry (docker-registry), both started here on 127.0.0.1 — and again
# by B with everything local (local-warm).
#
# Goal: remote-warm within 2× of local-warm plus the transfer time of its
# bytes (at the throughput a plain curl of one large blob gets from the same
# server in this run), zero upstream downloads and zero builds on B; a
# second prewarm uploads 0 bytes.
#
# usage: bench/shared_cache.sh
# env:   TARGETS (default "aarch64-linux armv7-linux s390x-linux"), KEEP_WORK=1
# Needs: nginx, docker-registry, curl, perl; the host's apt mirror.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
targets=${TARGETS:-aarch64-linux armv7-linux s390x-linux}
for tool in nginx docker-registry curl perl; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing (scripts/setup.sh)" >&2; exit 1; }
done
cargo build --release --quiet
xbuild="${CARGO_TARGET_DIR:-$repo/target}/release/xbuild"
cargo fetch --quiet --locked --manifest-path examples/hello-rust/Cargo.toml

work=$(mktemp -d /tmp/xbuild-bench-shared.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ "${KEEP_WORK:-}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() { perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1:0")->sockport'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "error: nothing listens on $1" >&2; exit 1; }

# nginx with WebDAV PUT, one process, everything inside $work.
dav_port=$(free_port)
mkdir -p "$work/nginx/root"
cat > "$work/nginx/nginx.conf" <<CONF
master_process off; daemon off; pid $work/nginx/nginx.pid; error_log $work/nginx/error.log warn;
events { worker_connections 256; }
http { access_log off; client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
  default_type application/octet-stream;
  server { listen 127.0.0.1:$dav_port; root $work/nginx/root; client_max_body_size 0;
    location / { dav_methods PUT; create_full_put_path on; dav_access user:rw group:r all:r; } } }
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" &
pids+=($!)
oci_port=$(free_port)
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
  addr: 127.0.0.1:$oci_port
  secret: bench
CONF
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
pids+=($!)
wait_port "$dav_port"
wait_port "$oci_port"
webdav=http://127.0.0.1:$dav_port/xbuild
registry=oci://127.0.0.1:$oci_port/bench/cache

"$xbuild" cache keygen --name bench --out "$work/bench.secret" >"$work/bench.pub" 2>/dev/null
public=$(cat "$work/bench.pub")

now() { perl -MTime::HiRes=time -e 'printf "%.3f", time'; }
elapsed() { perl -e 'printf "%.2f", $ARGV[1] - $ARGV[0]' "$1" "$2"; }
json() { perl -MJSON::PP -e 'local $/; my $j = decode_json(<STDIN>); my @p = split /\./, $ARGV[0]; for (@p) { $j = $j->{$_} } print $j // 0' "$1"; }

target_args=()
for target in $targets; do target_args+=(--target "$target"); done

# run NAME CACHE PROJECT ARGS...: one timed command, JSON in $work/NAME.json.
run() {
    local name=$1 cache=$2 project=$3
    shift 3
    local start end
    start=$(now)
    XBUILD_CACHE_DIR=$cache "$xbuild" "$@" "$repo/examples/$project" "${target_args[@]}" --json -q \
        >"$work/$name.json" 2>"$work/$name.err" || { cat "$work/$name.err" >&2; echo "error: $name failed" >&2; exit 1; }
    end=$(now)
    printf '%s' "$(elapsed "$start" "$end")" >"$work/$name.time"
}

rows=()
for project in cowsay hello-rust; do
    run "$project-a-cold" "$work/a" "$project" build --out "$work/out-a-$project"
    run "$project-prewarm" "$work/a" "$project" cache prewarm --remote "$webdav" --remote "$registry" --sign "$work/bench.secret"
    run "$project-prewarm2" "$work/a" "$project" cache prewarm --remote "$webdav" --remote "$registry" --sign "$work/bench.secret"
    second_bytes=$(perl -MJSON::PP -e 'local $/; my $j = decode_json(<STDIN>); my $s = 0; $s += $_->{bytes_uploaded} for @{$j->{upload}{remotes}}; print $s' <"$work/$project-prewarm2.json")
    for via in webdav registry; do
        url=$webdav
        [ "$via" = registry ] && url=$registry
        run "$project-b-$via" "$work/b-$via-$project" "$project" build --out "$work/out-b-$via-$project" --remote "$url" --trust "$public"
        run "$project-b-$via-warm" "$work/b-$via-$project" "$project" build --out "$work/out-b-$via-$project"
    done
    rows+=("$project")
    echo "$project: second prewarm uploaded $second_bytes bytes" >&2
    echo "$second_bytes" >"$work/$project-second-bytes"
done

# Throughput of a plain download of the largest blob from nginx, for the
# transfer-time part of the goal.
largest=$(find "$work/nginx/root" -type f -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2)
rel=${largest#"$work/nginx/root/"}
start=$(now)
curl -fsS -o /dev/null "http://127.0.0.1:$dav_port/$rel"
end=$(now)
size=$(stat -c %s "$largest")
mbps=$(perl -e 'printf "%.1f", $ARGV[0] / 1e6 / ($ARGV[2] - $ARGV[1])' "$size" "$start" "$end")

printf '\ncowsay and hello-rust for %s; one run each; load %s\n' "$targets" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '(plain curl of the largest blob from nginx: %s MB/s)\n\n' "$mbps"
echo "| project | A cold (s) | B remote-warm WebDAV (s) | B remote-warm registry (s) | local-warm (s) | remote bytes | B downloaded / built | goal: ≤ 2×local-warm + transfer | second prewarm (bytes) |"
echo "|---|---:|---:|---:|---:|---:|---:|---|---:|"
for project in "${rows[@]}"; do
    a=$(cat "$work/$project-a-cold.time")
    bw=$(cat "$work/$project-b-webdav.time")
    br=$(cat "$work/$project-b-registry.time")
    lw=$(cat "$work/$project-b-webdav-warm.time")
    bytes=$(json summary.bytes.remote <"$work/$project-b-webdav.json")
    down=$(( $(json summary.downloaded <"$work/$project-b-webdav.json") + $(json summary.downloaded <"$work/$project-b-registry.json") ))
    built=$(( $(json summary.built <"$work/$project-b-webdav.json") + $(json summary.built <"$work/$project-b-registry.json") ))
    goal=$(perl -e 'my ($l, $b, $m, $w, $r) = @ARGV; my $limit = 2 * $l + $b / 1e6 / $m; printf "%.2f s: WebDAV %s, registry %s", $limit, ($w <= $limit ? "met" : "missed"), ($r <= $limit ? "met" : "missed")' "$lw" "$bytes" "$mbps" "$bw" "$br")
    printf '| %s | %s | %s | %s | %s | %s | %s / %s | %s | %s |\n' "$project" "$a" "$bw" "$br" "$lw" "$bytes" "$down" "$built" "$goal" "$(cat "$work/$project-second-bytes")"
done
