#!/usr/bin/env bash
# Gatehouse data-plane benchmark: the same small JSON GET and 1 KB JSON POST measured with wrk
# (a) directly against the upstream, (b) through nginx, (c) through HAProxy, (d) through
# Gatehouse (bundled catalog seeded, plus a `bench` API proxied to the upstream), and through
# Gatehouse with rate limits: (e) `gatehouse-local`, local limits, (f) `gatehouse-redis`, limits
# on a redis-server of its own (on the load core). For (e) and (f) wrk sends the API key of a
# consumer subscribed to the bench API under a plan too generous to refuse anything, so the
# difference to (d) is what deciding costs; the decisions each node counted are reported.
#
# Identity (issue 4): every Gatehouse call presents a credential, so the `gatehouse` row is
# the API-key run (X-API-Key; SHA-256 + constant-time compare against the snapshot). The GET
# is also measured with a JWT: `gatehouse-rs256` and `gatehouse-es256` (the PyJWT vectors of
# tests/fixtures/jwt, issuer keys given inline), against `haproxy-rs256` and `haproxy-es256`
# (HAProxy's `jwt_verify` on the same tokens, plus alg, iss, aud and exp checks). HAProxy
# verifies the signature on every request; Gatehouse caches a verified token by its SHA-256
# until it expires, so a repeated token costs a hash and a map lookup.
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
# Needs: wrk, nginx, haproxy, redis-server, taskset, curl, python3
# (apt-get install -y wrk nginx haproxy redis-server).
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
HAPROXY_RS=127.0.0.1:18005
HAPROXY_ES=127.0.0.1:18006
JWT=tests/fixtures/jwt
GH=127.0.0.1:18003
GH_ADMIN=127.0.0.1:18004
GHL=127.0.0.1:18005
GHL_ADMIN=127.0.0.1:18006
GHR=127.0.0.1:18007
GHR_ADMIN=127.0.0.1:18008
REDIS_PORT=18009
TOKEN=bench-bootstrap-token-0123456789

for tool in wrk nginx haproxy redis-server taskset curl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk nginx haproxy redis-server)" >&2; exit 2; }
done

for port in 18000 18001 18002 18003 18004 18005 18006 18007 18008 18009; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use (a previous run still going?)" >&2; exit 2
  fi
done
rm -rf "$OUT" && mkdir -p "$OUT/raw" "$OUT/nginx" "$OUT/data" "$OUT/data-local" "$OUT/data-redis" "$OUT/redis"
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
  GATEHOUSE_BIN=${CARGO_TARGET_DIR:-target}/bench-release/gatehouse
fi
cargo build -q --profile bench-release -p gatehouse-bench-upstream
BIN=${CARGO_TARGET_DIR:-target}/bench-release
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
for alg in RS256 ES256; do
  if [ "$alg" = RS256 ]; then bind=$HAPROXY_RS; pem=$PWD/$JWT/rsa-1.pub.pem; else bind=$HAPROXY_ES; pem=$PWD/$JWT/ec-1.pub.pem; fi
  cat >>"$OUT/haproxy.cfg" <<EOF
frontend fe_$alg
  bind $bind
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('\$.alg')
  http-request deny deny_status 401 unless { var(txn.alg) -m str $alg }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify(txn.alg,"$pem") -m int 1 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.iss') -m str "https://idp.northwind.test/" }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.aud') -m str gatehouse }
  http-request set-var(txn.now) date()
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
  http-request deny deny_status 401 if { var(txn.exp),sub(txn.now) -m int lt 0 }
  http-request replace-path /bench/v1(/.*) \1
  default_backend be
EOF
done
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
# Identity: the seeded consumer b2b-portal, subscribed to the bench API, with an API key; the
# test vectors' issuer with its public keys inline (no JWKS endpoint needed).
# A plan that never refuses: what is measured is the cost of deciding, not refusals.
admin POST /plans '{"name":"bench-unlimited","rate":{"requests":100000000,"per_seconds":1}}' >/dev/null
admin POST /consumers/b2b-portal/subscriptions '{"api":"bench","plan":"bench-unlimited"}' >/dev/null
admin POST /consumers/b2b-portal/keys '{}' >/dev/null
API_KEY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["key"])' "$OUT/admin-last.json")
python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))["issuers"]["main"]; print(json.dumps({"issuer": v["issuer"], "audiences": v["audiences"], "algorithms": v["algorithms"], "keys": v["jwks"]}))' \
  "$JWT/vectors.json" >"$OUT/issuer.json"
code=$(admin POST /issuers "$OUT/issuer.json")
[ "$code" = 201 ] || { echo "registering the issuer failed: $code $(cat "$OUT/admin-last.json")" >&2; exit 1; }
token_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tokens"][sys.argv[2]]["token"])' "$JWT/vectors.json" "$1"; }
RS256=$(token_of rs256_valid)
ES256=$(token_of es256_valid)
wait_auth() { # url header
  for _ in $(seq 1 200); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "$2" "$1" || true)
    [ "$code" = 200 ] && return 0
    sleep 0.05
  done
  echo "timed out waiting for $1 to answer 200 with a credential" >&2; return 1
}
wait_auth "http://$GH/bench/v1/items/42" "X-API-Key: $API_KEY"
wait_auth "http://$GH/inventory/v2/warehouses" "X-API-Key: $API_KEY"
wait_auth "http://$GH/bench/v1/items/42" "Authorization: Bearer $RS256"
wait_auth "http://$HAPROXY_RS/bench/v1/items/42" "Authorization: Bearer $RS256"
wait_auth "http://$HAPROXY_ES/bench/v1/items/42" "Authorization: Bearer $ES256"

echo "== redis-server on core $LOAD_CPU (port $REDIS_PORT)"
start "$LOAD_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$PWD/$OUT/redis" >"$OUT/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && break; sleep 0.05; done
admin_at() { # admin-addr method path [json]
  curl -s -o "$OUT/admin-last.json" -w '%{http_code}' -X "$2" "http://$1$3" \
    -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' ${4:+--data "$4"}
}
limited_node() { # name proxy admin data-dir [serve flags...]: starts a node, sets it up; sets NODE_PID, NODE_KEY
  local name=$1 proxy=$2 adm=$3 data=$4; shift 4
  GATEHOUSE_BOOTSTRAP_TOKEN=$TOKEN RUST_LOG=warn start "$PROXY_CPU" "$GATEHOUSE_BIN" serve \
    --data-dir "$data" --proxy-listen "$proxy" --admin-listen "$adm" \
    --seed-catalog specs/catalog.yaml --proxy-threads "$PROXY_THREADS" "$@" >"$OUT/$name.log" 2>&1 &
  NODE_PID=$!
  PIDS+=($NODE_PID)
  wait_http "http://$adm/readyz" 200
  admin_at "$adm" POST /teams '{"name":"bench","contact":"bench@example.com"}' >/dev/null
  admin_at "$adm" POST /apis '{"slug":"bench","title":"Bench","team":"bench"}' >/dev/null
  code=$(admin_at "$adm" POST /apis/bench/versions "$(cat bench/bench-api.json)")
  [ "$code" = 201 ] || { echo "$name: registering the bench API failed: $code $(cat "$OUT/admin-last.json")" >&2; exit 1; }
  admin_at "$adm" POST /apis/bench/versions/1.0.0/publish '{}' >/dev/null
  admin_at "$adm" PUT /apis/bench/majors/1/upstream "{\"targets\":[{\"url\":\"http://$UP\",\"weight\":100}]}" >/dev/null
  # A plan that never refuses: what is measured is the cost of deciding.
  admin_at "$adm" POST /plans '{"name":"bench-unlimited","rate":{"requests":100000000,"per_seconds":1}}' >/dev/null
  admin_at "$adm" POST /consumers '{"name":"bench-client"}' >/dev/null
  admin_at "$adm" POST /consumers/bench-client/subscriptions '{"api":"bench","plan":"bench-unlimited"}' >/dev/null
  admin_at "$adm" POST /consumers/bench-client/keys '{}' >/dev/null
  NODE_KEY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("key",""))' "$OUT/admin-last.json")
  for _ in $(seq 1 200); do
    c=$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $NODE_KEY" "http://$proxy/bench/v1/items/42" || true)
    [ "$c" = 200 ] && return 0
    sleep 0.05
  done
  echo "$name: the bench API never answered 200" >&2; exit 1
}
echo "== gatehouse with local limits on core $PROXY_CPU"
limited_node gatehouse-local "$GHL" "$GHL_ADMIN" "$OUT/data-local"
GHL_PID=$NODE_PID KEY_LOCAL=$NODE_KEY
echo "== gatehouse with Redis limits on core $PROXY_CPU"
limited_node gatehouse-redis "$GHR" "$GHR_ADMIN" "$OUT/data-redis" --redis-url "redis://127.0.0.1:$REDIS_PORT"
GHR_PID=$NODE_PID KEY_REDIS=$NODE_KEY

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
  [gatehouse-local]="http://$GHL/bench/v1/items/42"
  [gatehouse-redis]="http://$GHR/bench/v1/items/42"
)
declare -A POST_URL=(
  [direct]="http://$UP/items"
  [nginx]="http://$NGINX/bench/v1/items"
  [haproxy]="http://$HAPROXY/bench/v1/items"
  [gatehouse]="http://$GH/bench/v1/items"
  [gatehouse-local]="http://$GHL/bench/v1/items"
  [gatehouse-redis]="http://$GHR/bench/v1/items"
)
declare -A PROC=(
  [direct]="" [nginx]="$NGINX_PID $NGINX_WORKERS" [haproxy]="$HAPROXY_PID" [gatehouse]="$GH_PID"
  [gatehouse-rs256]="$GH_PID" [gatehouse-es256]="$GH_PID"
  [haproxy-rs256]="$HAPROXY_PID" [haproxy-es256]="$HAPROXY_PID"
  [gatehouse-local]="$GHL_PID" [gatehouse-redis]="$GHR_PID"
)
# The credential each setup presents (only Gatehouse and the JWT HAProxy frontends check one).
declare -A AUTH=(
  [direct]="X-Bench: none" [nginx]="X-Bench: none" [haproxy]="X-Bench: none"
  [gatehouse]="X-API-Key: $API_KEY"
  [gatehouse-rs256]="Authorization: Bearer $RS256" [gatehouse-es256]="Authorization: Bearer $ES256"
  [haproxy-rs256]="Authorization: Bearer $RS256" [haproxy-es256]="Authorization: Bearer $ES256"
  [gatehouse-local]="X-API-Key: $KEY_LOCAL" [gatehouse-redis]="X-API-Key: $KEY_REDIS"
)
URL[gatehouse-rs256]="http://$GH/bench/v1/items/42"
URL[gatehouse-es256]="http://$GH/bench/v1/items/42"
URL[haproxy-rs256]="http://$HAPROXY_RS/bench/v1/items/42"
URL[haproxy-es256]="http://$HAPROXY_ES/bench/v1/items/42"
read -r -a SETUPS <<<"${SETUPS:-direct nginx haproxy gatehouse gatehouse-local gatehouse-redis}"
read -r -a JWT_SETUPS <<<"${JWT_SETUPS-haproxy-rs256 gatehouse-rs256 haproxy-es256 gatehouse-es256}"
measure() { # setup kind round [wrk args...]
  local s=$1 kind=$2 round=$3; shift 3
  local before after
  before=$(cpu_ticks ${PROC[$s]})
  pin "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency -H "${AUTH[$s]}" "$@" \
    >"$OUT/raw/$s-$kind-$round.txt"
  after=$(cpu_ticks ${PROC[$s]})
  echo "$((after - before))" >"$OUT/raw/$s-$kind-$round.ticks"
}

echo "== warm-up"
for s in "${SETUPS[@]}" "${JWT_SETUPS[@]}"; do
  pin "$LOAD_CPU" wrk -t1 -c"$CONNS" -d2s -H "${AUTH[$s]}" "${URL[$s]}" >/dev/null
done

for round in $(seq 1 "$ROUNDS"); do
  for s in "${SETUPS[@]}"; do
    echo "== round $round: $s GET"
    measure "$s" get "$round" "${URL[$s]}"
    echo "== round $round: $s POST 1 KB"
    measure "$s" post "$round" -s "$OUT/post.lua" "${POST_URL[$s]}"
  done
  for s in "${JWT_SETUPS[@]}"; do
    echo "== round $round: $s GET"
    measure "$s" get "$round" "${URL[$s]}"
  done
done

PEAK_RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$GH_PID/status")
RSS_KB=$(awk '/VmRSS/ {print $2}' "/proc/$GH_PID/status")
curl -s "http://$GH_ADMIN/metrics" >"$OUT/metrics.txt"
curl -s "http://$GHL_ADMIN/metrics" >"$OUT/metrics-local.txt"
curl -s "http://$GHR_ADMIN/metrics" >"$OUT/metrics-redis.txt"

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$OUT" "$PEAK_RSS_KB" "$RSS_KB" "$ROUNDS" "$DURATION" "$CONNS" "$PROXY_THREADS" "${FEATURES:-none}" "$(getconf CLK_TCK)" "$LOAD" "$NICE" "$GATEHOUSE_BIN" <<'PY'
import glob, os, re, statistics, sys
out, peak_kb, rss_kb, rounds, duration, conns, threads, features, clk_tck, load, nice, gh_bin = sys.argv[1:]
SETUPS = ("direct", "nginx", "haproxy", "gatehouse", "gatehouse-local", "gatehouse-redis")

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
    for setup in SETUPS:
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
    for setup in SETUPS:
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
lines.append("| request | local limits / plain req/s | Redis limits / plain req/s | local limits / plain CPU per request | Redis limits / plain CPU per request |")
lines.append("| --- | ---: | ---: | ---: | ---: |")
for kind, label in (("get", "GET"), ("post", "POST 1 KB")):
    if not all((s, kind) in rows for s in ("gatehouse", "gatehouse-local", "gatehouse-redis")):
        continue
    g, l, r = (rows[(s, kind)] for s in ("gatehouse", "gatehouse-local", "gatehouse-redis"))
    lines.append(f"| {label} | {l[0]/g[0]:.2f} | {r[0]/g[0]:.2f} | {l[5]/g[5]:.2f} | {r[5]/g[5]:.2f} |")
def decisions(path):
    text = open(path).read() if os.path.exists(path) else ""
    found = re.findall(r'gatehouse_ratelimit_decisions_total\{backend="(\w+)",result="(\w+)"\} (\d+)', text)
    return ", ".join(f"{b} {r} {n}" for b, r, n in found if n != "0") or "none"
lines.append("")
lines.append(f"Rate-limit decisions counted: local-limits node: {decisions(os.path.join(out, 'metrics-local.txt'))}; "
             f"Redis-limits node: {decisions(os.path.join(out, 'metrics-redis.txt'))}.")
lines.append("")
lines.append(f"Gatehouse memory: peak RSS {int(peak_kb)/1024:.1f} MiB (VmHWM), RSS at the end {int(rss_kb)/1024:.1f} MiB, "
             "bundled catalog seeded plus the bench API.")
g = rows.get(("gatehouse", "get")); n = rows.get(("nginx", "get"))
if g and n:
    lines.append(f"GET gatehouse/nginx: {g[0]/n[0]:.2f} req/s, {g[2]/n[2]:.2f} p99, {n[5]/g[5]:.2f} CPU per request")
jwt = {}
for setup in ("haproxy-rs256", "gatehouse-rs256", "haproxy-es256", "gatehouse-es256"):
    rs = [parse(p) for p in sorted(glob.glob(f"{out}/raw/{setup}-get-*.txt"))]
    if rs:
        jwt[setup] = (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs),
                      statistics.median(r[2] for r in rs), sum(r[3] for r in rs),
                      statistics.median(r[5] for r in rs))
if jwt and g:
    lines.append("")
    lines.append("Identity (GET small JSON; the `gatehouse` rows above present an API key):")
    lines.append("")
    lines.append("| setup | requests/s | p50 ms | p99 ms | proxy CPU µs/request | non-2xx | vs gatehouse (API key) | vs HAProxy jwt_verify |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for setup, r in jwt.items():
        h = jwt.get("haproxy-" + setup.split("-")[1])
        vs_h = f"{r[0]/h[0]:.2f}" if h else ""
        lines.append(f"| {setup} | {r[0]:,.0f} | {r[1]:.3f} | {r[2]:.3f} | {r[4]:.1f} | {r[3]} | {r[0]/g[0]:.2f} | {vs_h} |")
ok = bool(g and n) and g[0] >= 0.8 * n[0] and g[2] <= 1.5 * n[2] and int(peak_kb) < 64 * 1024
lines.append(f"Performance bar (GET >= 0.8x nginx req/s, p99 <= 1.5x nginx, peak RSS < 64 MiB): {'MET' if ok else 'NOT MET'}")
text = "\n".join(lines)
print(text)
open(os.path.join(out, "results.md"), "w").write(text + "\n")
PY
