#!/usr/bin/env bash
# Gatehouse data-plane benchmark: the same small JSON GET and 1 KB JSON POST measured with wrk
# (a) directly against the upstream, (b) through nginx, (c) through HAProxy, (d) through
# Gatehouse with access logging off (bundled catalog seeded, plus a `bench` API proxied to
# the upstream), (e) the same with access logging on into SQLite, and (f) into PostgreSQL
# (when BENCH_POSTGRES_URL or GATEHOUSE_TEST_POSTGRES_URL names a database; a fresh schema is
# made and dropped). Each Gatehouse is its own process, pinned like the other proxies: its
# access-log writer shares the proxy's core, so the cost of logging is in the figures.
#
# Every proxy gets core 0 (one worker/thread); wrk and the upstream share core 1. Rounds are
# interleaved so drift on a shared machine hits every setup alike; medians are reported.
#
#   bench/run.sh                      # 3 rounds of 10 s per setup and request
#   ROUNDS=4 DURATION=10s bench/run.sh
#   FEATURES=mimalloc bench/run.sh    # build Gatehouse with a cargo feature
#   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test bench/run.sh
#
# Needs: wrk, nginx, haproxy, taskset, curl, python3 (apt-get install -y wrk nginx haproxy);
# psql for the PostgreSQL setup.
# Writes bench/out/ (results.md, raw wrk output, logs).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
PROXY_THREADS=${PROXY_THREADS:-1}
FEATURES=${FEATURES:-}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT=bench/out
UP=127.0.0.1:18000
NGINX=127.0.0.1:18001
HAPROXY=127.0.0.1:18002
TOKEN=bench-bootstrap-token-0123456789
PG_BASE=${BENCH_POSTGRES_URL:-${GATEHOUSE_TEST_POSTGRES_URL:-}}
PG_SCHEMA=gh_bench_$$
# Each Gatehouse setup: proxy port, admin port.
declare -A GH_PROXY=([gatehouse]=127.0.0.1:18003 [gh-log-sqlite]=127.0.0.1:18005 [gh-log-pg]=127.0.0.1:18007)
declare -A GH_ADMIN=([gatehouse]=127.0.0.1:18004 [gh-log-sqlite]=127.0.0.1:18006 [gh-log-pg]=127.0.0.1:18008)
declare -A GH_PID=()

for tool in wrk nginx haproxy taskset curl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk nginx haproxy)" >&2; exit 2; }
done

rm -rf "$OUT" && mkdir -p "$OUT/raw" "$OUT/nginx" "$OUT/data"
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -INT "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
  if [ -n "$PG_BASE" ]; then psql -q "$PG_BASE" -c "DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

echo "== building release binaries (profile bench-release)"
feature_args=()
[ -n "$FEATURES" ] && feature_args=(--features "$FEATURES")
cargo build -q --profile bench-release -p gatehouse-gateway --bin gatehouse "${feature_args[@]}"
cargo build -q --profile bench-release -p gatehouse-bench-upstream
BIN=target/bench-release

wait_http() { # url expected-status
  for _ in $(seq 1 200); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)
    [ "$code" = "$2" ] && return 0
    sleep 0.05
  done
  echo "timed out waiting for $1 to answer $2" >&2; return 1
}

echo "== upstream on core $LOAD_CPU"
taskset -c "$LOAD_CPU" "$BIN/bench-upstream" "$UP" >"$OUT/upstream.log" 2>&1 &
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
taskset -c "$PROXY_CPU" nginx -p "$PWD/$OUT/nginx" -c "$PWD/$OUT/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
wait_http "http://$NGINX/bench/v1/items/42" 200

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
taskset -c "$PROXY_CPU" haproxy -db -f "$OUT/haproxy.cfg" >"$OUT/haproxy.log" 2>&1 &
PIDS+=($!)
wait_http "http://$HAPROXY/bench/v1/items/42" 200

start_gatehouse() { # name, extra serve arguments...
  local name=$1; shift
  local admin_addr=${GH_ADMIN[$name]} proxy_addr=${GH_PROXY[$name]}
  echo "== $name on core $PROXY_CPU (proxy threads: $PROXY_THREADS, features: ${FEATURES:-none}) $*"
  mkdir -p "$OUT/data-$name"
  GATEHOUSE_BOOTSTRAP_TOKEN=$TOKEN RUST_LOG=warn taskset -c "$PROXY_CPU" "$BIN/gatehouse" serve \
    --data-dir "$OUT/data-$name" --proxy-listen "$proxy_addr" --admin-listen "$admin_addr" \
    --seed-catalog specs/catalog.yaml --proxy-threads "$PROXY_THREADS" "$@" >"$OUT/$name.log" 2>&1 &
  GH_PID[$name]=$!
  PIDS+=($!)
  wait_http "http://$admin_addr/readyz" 200
  admin() { # method path [json-file-or-inline]
    local body=${3:-}
    if [ -f "$body" ]; then body=$(cat "$body"); fi
    curl -s -o "$OUT/admin-last.json" -w '%{http_code}' -X "$1" "http://$admin_addr$2" \
      -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' ${body:+--data "$body"}
  }
  admin POST /teams '{"name":"bench","contact":"bench@example.com"}' >/dev/null
  admin POST /apis '{"slug":"bench","title":"Bench","team":"bench"}' >/dev/null
  code=$(admin POST /apis/bench/versions bench/bench-api.json)
  [ "$code" = 201 ] || { echo "registering the bench API failed: $code $(cat "$OUT/admin-last.json")" >&2; exit 1; }
  admin POST /apis/bench/versions/1.0.0/publish '{}' >/dev/null
  admin PUT /apis/bench/majors/1/upstream "{\"targets\":[{\"url\":\"http://$UP\",\"weight\":100}]}" >/dev/null
  wait_http "http://$proxy_addr/bench/v1/items/42" 200
  wait_http "http://$proxy_addr/inventory/v2/warehouses" 200
}

GH_SETUPS=(gatehouse gh-log-sqlite)
start_gatehouse gatehouse --access-log off
start_gatehouse gh-log-sqlite --access-log on
if [ -n "$PG_BASE" ] && psql -q "$PG_BASE" -c "CREATE SCHEMA $PG_SCHEMA" >/dev/null 2>&1; then
  sep='?'; case "$PG_BASE" in *\?*) sep='&';; esac
  start_gatehouse gh-log-pg --access-log on \
    --database-url "${PG_BASE}${sep}options=-c%20search_path%3D$PG_SCHEMA"
  GH_SETUPS+=(gh-log-pg)
else
  echo "== no PostgreSQL (set BENCH_POSTGRES_URL): the gh-log-pg setup is skipped"
fi

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
)
declare -A POST_URL=(
  [direct]="http://$UP/items"
  [nginx]="http://$NGINX/bench/v1/items"
  [haproxy]="http://$HAPROXY/bench/v1/items"
)
for g in "${GH_SETUPS[@]}"; do
  URL[$g]="http://${GH_PROXY[$g]}/bench/v1/items/42"
  POST_URL[$g]="http://${GH_PROXY[$g]}/bench/v1/items"
done
SETUPS=(direct nginx haproxy "${GH_SETUPS[@]}")

echo "== warm-up"
for s in "${SETUPS[@]}"; do
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d2s "${URL[$s]}" >/dev/null
done

for round in $(seq 1 "$ROUNDS"); do
  for s in "${SETUPS[@]}"; do
    echo "== round $round: $s GET"
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "${URL[$s]}" \
      >"$OUT/raw/$s-get-$round.txt"
    echo "== round $round: $s POST 1 KB"
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$OUT/post.lua" "${POST_URL[$s]}" \
      >"$OUT/raw/$s-post-$round.txt"
  done
done

GH_PID_MAIN=${GH_PID[gatehouse]}
PEAK_RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$GH_PID_MAIN/status")
RSS_KB=$(awk '/VmRSS/ {print $2}' "/proc/$GH_PID_MAIN/status")
for g in "${GH_SETUPS[@]}"; do
  curl -s "http://${GH_ADMIN[$g]}/metrics" >"$OUT/metrics-$g.txt"
  # Every request the logging setups served must be in their store, none dropped.
  for _ in $(seq 1 200); do
    curl -s "http://${GH_ADMIN[$g]}/readyz" >"$OUT/readyz-$g.json"
    python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["detail"].get("access_log") or {}; sys.exit(0 if not a.get("enabled") or (a["queue_depth"]==0 and a["spool_bytes"]==0) else 1)' "$OUT/readyz-$g.json" && break
    sleep 0.1
  done
  awk '/VmHWM/ {print $2}' "/proc/${GH_PID[$g]}/status" >"$OUT/peak-rss-$g.txt"
done

python3 - "$OUT" "$PEAK_RSS_KB" "$RSS_KB" "$ROUNDS" "$DURATION" "$CONNS" "$PROXY_THREADS" "${FEATURES:-none}" "${GH_SETUPS[*]}" <<'PY'
import glob, json, os, re, statistics, sys
out, peak_kb, rss_kb, rounds, duration, conns, threads, features, gh_setups = sys.argv[1:]
gh_setups = gh_setups.split()
setups = ["direct", "nginx", "haproxy"] + gh_setups

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
    return rps, p50, p99, int(errors.group(1)) if errors else 0, sock.group(1) if sock else ""

rows = {}
for kind in ("get", "post"):
    for setup in setups:
        runs = [parse(p) for p in sorted(glob.glob(f"{out}/raw/{setup}-{kind}-*.txt"))]
        rows[(setup, kind)] = (
            statistics.median(r[0] for r in runs),
            statistics.median(r[1] for r in runs),
            statistics.median(r[2] for r in runs),
            sum(r[3] for r in runs),
            "; ".join(r[4] for r in runs if r[4]),
        )

lines = [
    f"Gatehouse benchmark: median of {rounds} runs of {duration}, wrk -t1 -c{conns}; "
    f"proxies pinned to one core, wrk + upstream on the other; gatehouse proxy threads: {threads}, "
    f"features: {features}. `gatehouse`: access log off; `gh-log-sqlite` / `gh-log-pg`: access "
    f"log on, into SQLite / PostgreSQL (the writer shares the proxy's core; PostgreSQL itself does not).",
    "",
    "| request | setup | requests/s | p50 ms | p99 ms | non-2xx |",
    "| --- | --- | ---: | ---: | ---: | ---: |",
]
for kind, label in (("get", "GET small JSON"), ("post", "POST 1 KB JSON")):
    for setup in setups:
        rps, p50, p99, errs, sock = rows[(setup, kind)]
        lines.append(f"| {label} | {setup} | {rps:,.0f} | {p50:.3f} | {p99:.3f} | {errs} |")
lines.append("")
lines.append("| request | gatehouse/nginx req/s | gatehouse/nginx p99 | gatehouse/haproxy req/s | gatehouse/direct req/s |")
lines.append("| --- | ---: | ---: | ---: | ---: |")
for kind, label in (("get", "GET"), ("post", "POST 1 KB")):
    g, n, h, d = (rows[(s, kind)] for s in ("gatehouse", "nginx", "haproxy", "direct"))
    lines.append(f"| {label} | {g[0]/n[0]:.2f} | {g[2]/n[2]:.2f} | {g[0]/h[0]:.2f} | {g[0]/d[0]:.2f} |")
lines.append("")
lines.append("| request | setup | req/s vs access log off | p99 vs access log off |")
lines.append("| --- | --- | ---: | ---: |")
for kind, label in (("get", "GET"), ("post", "POST 1 KB")):
    off = rows[("gatehouse", kind)]
    for setup in gh_setups[1:]:
        on = rows[(setup, kind)]
        lines.append(f"| {label} | {setup} | {on[0]/off[0]:.2f} | {on[2]/off[2]:.2f} |")
lines.append("")
for setup in gh_setups[1:]:
    try:
        a = json.load(open(os.path.join(out, f"readyz-{setup}.json")))["detail"]["access_log"]
        peak = int(open(os.path.join(out, f"peak-rss-{setup}.txt")).read().strip() or 0)
        lines.append(f"{setup}: access records queued {a['queued']:,}, written {a['written']:,}, "
                     f"spooled {a['spooled']:,}, replayed {a['replayed']:,}, dropped {a['dropped']:,}; "
                     f"peak RSS {peak/1024:.1f} MiB.")
    except (OSError, KeyError, ValueError) as e:
        lines.append(f"{setup}: access-log counters unavailable ({e})")
lines.append("")
lines.append(f"Gatehouse memory: peak RSS {int(peak_kb)/1024:.1f} MiB (VmHWM), RSS at the end {int(rss_kb)/1024:.1f} MiB, "
             "bundled catalog seeded plus the bench API.")
g = rows[("gatehouse", "get")]; n = rows[("nginx", "get")]
ok = g[0] >= 0.8 * n[0] and g[2] <= 1.5 * n[2] and int(peak_kb) < 64 * 1024
lines.append(f"Performance bar (GET >= 0.8x nginx req/s, p99 <= 1.5x nginx, peak RSS < 64 MiB): {'MET' if ok else 'NOT MET'}")
text = "\n".join(lines)
print(text)
open(os.path.join(out, "results.md"), "w").write(text + "\n")
PY
