#!/usr/bin/env bash
# Gatehouse data-plane benchmark: the same small JSON GET and 1 KB JSON POST measured with wrk
# (a) directly against the upstream, (b) through nginx, (c) through HAProxy, (d) through
# Gatehouse (bundled catalog seeded, plus a `bench` API proxied to the upstream).
#
# Every proxy gets core 0 (one worker/thread); wrk and the upstream share core 1. Rounds are
# interleaved so drift on a shared machine hits every setup alike; medians are reported.
#
#   bench/run.sh                      # 3 rounds of 10 s per setup and request
#   ROUNDS=4 DURATION=10s bench/run.sh
#   FEATURES=mimalloc bench/run.sh    # build Gatehouse with a cargo feature
#   GATEHOUSE_BIN=/path/gatehouse bench/run.sh   # measure a prebuilt binary instead
#   NICE=-10 bench/run.sh             # run every piece at a higher priority (busy machine)
#   SETUPS="nginx gatehouse" bench/run.sh          # a quicker comparison (no summary ratios)
#
# Beside requests/s and latency, it reports each proxy's CPU time per request (from
# /proc/PID/stat, all threads): the figure least disturbed by other load on a shared machine.
#
# Needs: wrk, nginx, haproxy, taskset, curl, python3 (apt-get install -y wrk nginx haproxy).
# Writes bench/out/ (results.md, raw wrk output, logs).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
PROXY_THREADS=${PROXY_THREADS:-1}
FEATURES=${FEATURES:-}
NICE=${NICE:-0}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT=bench/out
UP=127.0.0.1:18000
NGINX=127.0.0.1:18001
HAPROXY=127.0.0.1:18002
GH=127.0.0.1:18003
GH_ADMIN=127.0.0.1:18004
TOKEN=bench-bootstrap-token-0123456789

for tool in wrk nginx haproxy taskset curl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk nginx haproxy)" >&2; exit 2; }
done

for port in 18000 18001 18002 18003 18004; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use (a previous run still going?)" >&2; exit 2
  fi
done
rm -rf "$OUT" && mkdir -p "$OUT/raw" "$OUT/nginx" "$OUT/data"
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -INT "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

echo "== building release binaries (profile bench-release)"
feature_args=()
[ -n "$FEATURES" ] && feature_args=(--features "$FEATURES")
if [ -z "${GATEHOUSE_BIN:-}" ]; then
  cargo build -q --profile bench-release -p gatehouse-gateway --bin gatehouse "${feature_args[@]}"
  GATEHOUSE_BIN=target/bench-release/gatehouse
fi
cargo build -q --profile bench-release -p gatehouse-bench-upstream
BIN=target/bench-release
pin() { # cpu command...: runs in the foreground
  local cpu=$1; shift
  nice -n "$NICE" taskset -c "$cpu" "$@"
}
start() { # cpu command...: call with `&`; exec keeps `$!` the server's own PID
  local cpu=$1; shift
  exec nice -n "$NICE" taskset -c "$cpu" "$@"
}
cpu_ticks() { # pids... → utime+stime of all their threads, in clock ticks
  local total=0
  for p in "$@"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}

wait_http() { # url expected-status
  for _ in $(seq 1 200); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)
    [ "$code" = "$2" ] && return 0
    sleep 0.05
  done
  echo "timed out waiting for $1 to answer $2" >&2; return 1
}

echo "== upstream on core $LOAD_CPU"
start "$LOAD_CPU" "$BIN/bench-upstream" "$UP" >"$OUT/upstream.log" 2>&1 &
PIDS+=($!)
wait_http "http://$UP/items/42" 200

echo "== nginx on core $PROXY_CPU"
cat >"$OUT/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $PWD/$OUT/nginx/nginx.pid;
error_log $PWD/$OUT/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream up { server $UP; keepalive 128; }
  server {
    listen $NGINX reuseport;
    location /bench/v1/ {
      proxy_pass http://up/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
start "$PROXY_CPU" nginx -p "$PWD/$OUT/nginx" -c "$PWD/$OUT/nginx/nginx.conf" -g 'daemon off;' &
NGINX_PID=$!
PIDS+=($NGINX_PID)
wait_http "http://$NGINX/bench/v1/items/42" 200
NGINX_WORKERS=$(pgrep -P "$NGINX_PID" | tr '\n' ' ')

echo "== haproxy on core $PROXY_CPU"
cat >"$OUT/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind $HAPROXY
  http-request replace-path /bench/v1(/.*) \1
  default_backend be
backend be
  http-reuse always
  server up $UP
EOF
start "$PROXY_CPU" haproxy -db -f "$OUT/haproxy.cfg" >"$OUT/haproxy.log" 2>&1 &
HAPROXY_PID=$!
PIDS+=($HAPROXY_PID)
wait_http "http://$HAPROXY/bench/v1/items/42" 200

echo "== gatehouse on core $PROXY_CPU (proxy threads: $PROXY_THREADS, features: ${FEATURES:-none})"
GATEHOUSE_BOOTSTRAP_TOKEN=$TOKEN RUST_LOG=warn start "$PROXY_CPU" "$GATEHOUSE_BIN" serve \
  --data-dir "$OUT/data" --proxy-listen "$GH" --admin-listen "$GH_ADMIN" \
  --seed-catalog specs/catalog.yaml --proxy-threads "$PROXY_THREADS" >"$OUT/gatehouse.log" 2>&1 &
GH_PID=$!
PIDS+=($GH_PID)
wait_http "http://$GH_ADMIN/readyz" 200
admin() { # method path [json-file-or-inline]
  local body=${3:-}
  if [ -f "$body" ]; then body=$(cat "$body"); fi
  curl -s -o "$OUT/admin-last.json" -w '%{http_code}' -X "$1" "http://$GH_ADMIN$2" \
    -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' ${body:+--data "$body"}
}
admin POST /teams '{"name":"bench","contact":"bench@example.com"}' >/dev/null
admin POST /apis '{"slug":"bench","title":"Bench","team":"bench"}' >/dev/null
code=$(admin POST /apis/bench/versions bench/bench-api.json)
[ "$code" = 201 ] || { echo "registering the bench API failed: $code $(cat "$OUT/admin-last.json")" >&2; exit 1; }
admin POST /apis/bench/versions/1.0.0/publish '{}' >/dev/null
admin PUT /apis/bench/majors/1/upstream "{\"targets\":[{\"url\":\"http://$UP\",\"weight\":100}]}" >/dev/null
wait_http "http://$GH/bench/v1/items/42" 200
wait_http "http://$GH/inventory/v2/warehouses" 200

cat >"$OUT/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$PWD/bench/post-1k.json", "rb")
wrk.body = f:read("*a")
f:close()
EOF

declare -A URL=(
  [direct]="http://$UP/items/42"
  [nginx]="http://$NGINX/bench/v1/items/42"
  [haproxy]="http://$HAPROXY/bench/v1/items/42"
  [gatehouse]="http://$GH/bench/v1/items/42"
)
declare -A POST_URL=(
  [direct]="http://$UP/items"
  [nginx]="http://$NGINX/bench/v1/items"
  [haproxy]="http://$HAPROXY/bench/v1/items"
  [gatehouse]="http://$GH/bench/v1/items"
)
declare -A PROC=(
  [direct]="" [nginx]="$NGINX_PID $NGINX_WORKERS" [haproxy]="$HAPROXY_PID" [gatehouse]="$GH_PID"
)
read -r -a SETUPS <<<"${SETUPS:-direct nginx haproxy gatehouse}"
measure() { # setup kind round [wrk args...]
  local s=$1 kind=$2 round=$3; shift 3
  local before after
  before=$(cpu_ticks ${PROC[$s]})
  pin "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$@" >"$OUT/raw/$s-$kind-$round.txt"
  after=$(cpu_ticks ${PROC[$s]})
  echo "$((after - before))" >"$OUT/raw/$s-$kind-$round.ticks"
}

echo "== warm-up"
for s in "${SETUPS[@]}"; do
  pin "$LOAD_CPU" wrk -t1 -c"$CONNS" -d2s "${URL[$s]}" >/dev/null
done

for round in $(seq 1 "$ROUNDS"); do
  for s in "${SETUPS[@]}"; do
    echo "== round $round: $s GET"
    measure "$s" get "$round" "${URL[$s]}"
    echo "== round $round: $s POST 1 KB"
    measure "$s" post "$round" -s "$OUT/post.lua" "${POST_URL[$s]}"
  done
done

PEAK_RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$GH_PID/status")
RSS_KB=$(awk '/VmRSS/ {print $2}' "/proc/$GH_PID/status")
curl -s "http://$GH_ADMIN/metrics" >"$OUT/metrics.txt"

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$OUT" "$PEAK_RSS_KB" "$RSS_KB" "$ROUNDS" "$DURATION" "$CONNS" "$PROXY_THREADS" "${FEATURES:-none}" "$(getconf CLK_TCK)" "$LOAD" "$NICE" "$GATEHOUSE_BIN" <<'PY'
import glob, os, re, statistics, sys
out, peak_kb, rss_kb, rounds, duration, conns, threads, features, clk_tck, load, nice, gh_bin = sys.argv[1:]

def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    n, u = float(m.group(1)), m.group(2)
    return n / 1000 if u == "us" else n * 1000 if u == "s" else n

def parse(path):
    text = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = ms(re.search(r"\s50%\s+(\S+)", text).group(1))
    p99 = ms(re.search(r"\s99%\s+(\S+)", text).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: (.*)", text)
    total = int(re.search(r"(\d+) requests in", text).group(1))
    ticks_file = path.replace(".txt", ".ticks")
    ticks = int(open(ticks_file).read()) if os.path.exists(ticks_file) else 0
    cpu_us = ticks * 1e6 / int(clk_tck) / total if total and ticks else float("nan")
    return rps, p50, p99, int(errors.group(1)) if errors else 0, sock.group(1) if sock else "", cpu_us

rows = {}
for kind in ("get", "post"):
    for setup in ("direct", "nginx", "haproxy", "gatehouse"):
        runs = [parse(p) for p in sorted(glob.glob(f"{out}/raw/{setup}-{kind}-*.txt"))]
        if not runs:
            continue
        rows[(setup, kind)] = (
            statistics.median(r[0] for r in runs),
            statistics.median(r[1] for r in runs),
            statistics.median(r[2] for r in runs),
            sum(r[3] for r in runs),
            "; ".join(r[4] for r in runs if r[4]),
            statistics.median(r[5] for r in runs),
        )

lines = [
    f"Gatehouse benchmark: median of {rounds} runs of {duration}, wrk -t1 -c{conns}; "
    f"proxies pinned to one core, wrk + upstream on the other; gatehouse proxy threads: {threads}, "
    f"features: {features}; nice {nice}; binary {gh_bin}; load average at the end: {load}.",
    "",
    "| request | setup | requests/s | p50 ms | p99 ms | proxy CPU µs/request | non-2xx |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
]
for kind, label in (("get", "GET small JSON"), ("post", "POST 1 KB JSON")):
    for setup in ("direct", "nginx", "haproxy", "gatehouse"):
        if (setup, kind) not in rows:
            continue
        rps, p50, p99, errs, sock, cpu = rows[(setup, kind)]
        cpu_text = "" if setup == "direct" else f"{cpu:.1f}"
        lines.append(f"| {label} | {setup} | {rps:,.0f} | {p50:.3f} | {p99:.3f} | {cpu_text} | {errs} |")
lines.append("")
lines.append("| request | gatehouse/nginx req/s | gatehouse/nginx p99 | gatehouse/haproxy req/s | gatehouse/direct req/s | nginx/gatehouse CPU per request |")
lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
for kind, label in (("get", "GET"), ("post", "POST 1 KB")):
    if not all((s, kind) in rows for s in ("gatehouse", "nginx", "haproxy", "direct")):
        continue
    g, n, h, d = (rows[(s, kind)] for s in ("gatehouse", "nginx", "haproxy", "direct"))
    lines.append(f"| {label} | {g[0]/n[0]:.2f} | {g[2]/n[2]:.2f} | {g[0]/h[0]:.2f} | {g[0]/d[0]:.2f} | {n[5]/g[5]:.2f} |")
lines.append("")
lines.append(f"Gatehouse memory: peak RSS {int(peak_kb)/1024:.1f} MiB (VmHWM), RSS at the end {int(rss_kb)/1024:.1f} MiB, "
             "bundled catalog seeded plus the bench API.")
g = rows.get(("gatehouse", "get")); n = rows.get(("nginx", "get"))
if g and n:
    lines.append(f"GET gatehouse/nginx: {g[0]/n[0]:.2f} req/s, {g[2]/n[2]:.2f} p99, {n[5]/g[5]:.2f} CPU per request")
ok = bool(g and n) and g[0] >= 0.8 * n[0] and g[2] <= 1.5 * n[2] and int(peak_kb) < 64 * 1024
lines.append(f"Performance bar (GET >= 0.8x nginx req/s, p99 <= 1.5x nginx, peak RSS < 64 MiB): {'MET' if ok else 'NOT MET'}")
text = "\n".join(lines)
print(text)
open(os.path.join(out, "results.md"), "w").write(text + "\n")
PY
