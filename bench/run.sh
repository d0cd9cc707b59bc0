#!/usr/bin/env bash
# Gatehouse benchmark: one invocation measures every policy against the same references.
#
# References: (a) `direct` to the upstream, (b) `nginx` as a plain reverse proxy with upstream
# keep-alive, (c) `haproxy` plain, (d) `pingora-plain`, a Pingora proxy with no policy at all
# (bench/upstream/src/bin/pingora-plain.rs: Pingora's own floor). Gatehouse nodes (each `gatehouse serve`, bundled catalog
# seeded, plus the `bench` API of bench/bench-api.json registered through the admin API):
#
#   gatehouse        the full hot path with the access log off: normalise, route through the
#                    snapshot, API key (SHA-256 + constant-time compare), subscription, local
#                    rate-limit decision (a plan that never refuses), request validation,
#                    lifecycle and forwarding headers, metrics
#   gatehouse-noval  the same node, API `bench-noval`: the same spec with validation off
#   gh-redis         a node deciding limits on Redis (one EVALSHA per request)
#   gh-log-sqlite    a node with the access log on (SQLite)
#   gh-log-pg        a node with the access log on (PostgreSQL; BENCH_POSTGRES_URL)
#   gatehouse-rs256 / -es256  the main node with a JWT instead of the key, against
#   haproxy-rs256 / -es256    HAProxy's jwt_verify on the same token (plus alg, iss, aud, exp)
#
# Requests: GET /items/42 (small JSON), POST /orders with a 1 KB order (bench/post-1k.json),
# and, on gatehouse vs gatehouse-noval only, a 10 KB and a 100 KB order and a GET with five
# query parameters.
#
# Every proxy gets core 0 (one worker/thread); wrk, the upstream, Redis and PostgreSQL share
# core 1. Rounds are interleaved (odd rounds forwards, even rounds backwards) so drift on a
# shared machine hits every setup alike; medians are reported, with each proxy's CPU time per
# request (from /proc/PID/stat, all threads). Validation is also judged by paired ratios: in
# each round, gatehouse against gatehouse-noval measured right after it, then the median.
#
#   bench/run.sh                         # 3 rounds of 10 s per measurement (about 20 min)
#   ROUNDS=1 DURATION=5s bench/run.sh    # a quick look
#   ONLY="nginx gatehouse" bench/run.sh  # just these setups (the summary skips what is missing)
#   KINDS="get post1k" bench/run.sh      # just these requests
#   FEATURES=mimalloc bench/run.sh       # build Gatehouse with a cargo feature
#   GATEHOUSE_BIN=/path/gatehouse bench/run.sh   # measure a prebuilt binary instead
#   NICE=-10 bench/run.sh                # every piece at a higher priority (busy machine)
#   PERF="gatehouse:post1k gatehouse-noval:post1k" bench/run.sh   # also record perf profiles
#                                        # of these measurements (round 1; bench/out/perf-*.data)
#
# Needs: wrk, nginx, haproxy, redis-server, taskset, curl, python3
# (apt-get install -y wrk nginx haproxy redis-server). Writes bench/out/ (results.md, raw
# wrk output, logs, metrics).
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
PG_BASE=${BENCH_POSTGRES_URL-postgres://postgres@127.0.0.1:5432/test}
OUT=bench/out
JWT=tests/fixtures/jwt
TOKEN=bench-bootstrap-token-0123456789
UP=127.0.0.1:18000
NGINX=127.0.0.1:18001
HAPROXY=127.0.0.1:18002
PLAIN=127.0.0.1:18003
HAPROXY_RS=127.0.0.1:18005
HAPROXY_ES=127.0.0.1:18006
REDIS_PORT=18007
# Gatehouse nodes: proxy and admin ports.
declare -A GH_PROXY=([gatehouse]=127.0.0.1:18010 [gh-redis]=127.0.0.1:18012 [gh-log-sqlite]=127.0.0.1:18014 [gh-log-pg]=127.0.0.1:18016)
declare -A GH_ADMIN=([gatehouse]=127.0.0.1:18011 [gh-redis]=127.0.0.1:18013 [gh-log-sqlite]=127.0.0.1:18015 [gh-log-pg]=127.0.0.1:18017)
declare -A GH_PID=()

for tool in wrk nginx haproxy redis-server taskset curl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk nginx haproxy redis-server)" >&2; exit 2; }
done
for port in 18000 18001 18002 18003 18005 18006 18007 18010 18011 18012 18013 18014 18015 18016 18017; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use (a previous run still going?)" >&2; exit 2
  fi
done
rm -rf "$OUT" && mkdir -p "$OUT/raw" "$OUT/nginx" "$OUT/redis"
PIDS=()
PG_SCHEMA=""
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -INT "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
  if [ -n "$PG_SCHEMA" ]; then psql -q "$PG_BASE" -c "DROP SCHEMA $PG_SCHEMA CASCADE" >/dev/null 2>&1 || true; fi
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
  for p in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$total"
}
wait_http() { # url expected-status [header]
  for _ in $(seq 1 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' ${3:+-H "$3"} "$1" || true)
    [ "$code" = "$2" ] && return 0
    sleep 0.05
  done
  echo "timed out waiting for $1 to answer $2" >&2; return 1
}

# Request bodies: the 1 KB order, and 10 KB / 100 KB orders of the same shape.
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
base = json.load(open("bench/post-1k.json"))
for size, name in ((10 * 1024, "post-10k.json"), (100 * 1024, "post-100k.json")):
    order = dict(base, lines=[])
    i = 0
    while len(json.dumps(order, separators=(",", ":"))) < size - 120:
        order["lines"].append({"line_id": str(i), "sku": f"SKU-{10000 + i % 90000:05d}",
                               "quantity": 1 + i % 50, "unit_of_measure": "each",
                               "requested_date": "2026-03-06"})
        i += 1
    open(f"{out}/{name}", "w").write(json.dumps(order, separators=(",", ":")))
PY
cp bench/post-1k.json "$OUT/post-1k.json"
for b in 1k 10k 100k; do
  cat >"$OUT/post-$b.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$PWD/$OUT/post-$b.json", "rb")
wrk.body = f:read("*a")
f:close()
EOF
done

echo "== upstream, redis-server on core $LOAD_CPU"
start "$LOAD_CPU" "$BIN/bench-upstream" "$UP" >"$OUT/upstream.log" 2>&1 &
PIDS+=($!)
start "$LOAD_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$PWD/$OUT/redis" >"$OUT/redis.log" 2>&1 &
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
  client_max_body_size 1m;
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

echo "== haproxy on core $PROXY_CPU (plain, and jwt_verify frontends)"
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

echo "== pingora-plain on core $PROXY_CPU (no policy: Pingora's own per-request cost)"
start "$PROXY_CPU" "$BIN/pingora-plain" "$PLAIN" "$UP" >"$OUT/pingora-plain.log" 2>&1 &
PLAIN_PID=$!
PIDS+=($PLAIN_PID)
wait_http "http://$PLAIN/bench/v1/items/42" 200

token_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tokens"][sys.argv[2]]["token"])' "$JWT/vectors.json" "$1"; }
RS256=$(token_of rs256_valid)
ES256=$(token_of es256_valid)
python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))["issuers"]["main"]; print(json.dumps({"issuer": v["issuer"], "audiences": v["audiences"], "algorithms": v["algorithms"], "keys": v["jwks"]}))' \
  "$JWT/vectors.json" >"$OUT/issuer.json"
wait_http "http://$HAPROXY_RS/bench/v1/items/42" 200 "Authorization: Bearer $RS256"
wait_http "http://$HAPROXY_ES/bench/v1/items/42" 200 "Authorization: Bearer $ES256"

# A Gatehouse node on core $PROXY_CPU: the `bench` API (validation on) and `bench-noval` (the
# same spec, validation off) proxied to the upstream; consumer b2b-portal (seeded; also the
# `sub` of the test tokens) subscribed to both under a plan that never refuses (what is
# measured is the cost of deciding), with a fresh API key in KEY[name]; the tokens' issuer
# with its public keys inline.
declare -A KEY=()
start_gatehouse() { # name, extra serve arguments...
  local name=$1; shift
  local adm=${GH_ADMIN[$name]} proxy=${GH_PROXY[$name]}
  echo "== $name on core $PROXY_CPU (proxy threads: $PROXY_THREADS, features: ${FEATURES:-none}) $*"
  mkdir -p "$OUT/data-$name"
  GATEHOUSE_BOOTSTRAP_TOKEN=$TOKEN RUST_LOG=warn start "$PROXY_CPU" "$GATEHOUSE_BIN" serve \
    --data-dir "$OUT/data-$name" --proxy-listen "$proxy" --admin-listen "$adm" \
    --seed-catalog specs/catalog.yaml --proxy-threads "$PROXY_THREADS" "$@" >"$OUT/$name.log" 2>&1 &
  GH_PID[$name]=$!
  PIDS+=($!)
  wait_http "http://$adm/readyz" 200
  admin() { # method path [json-file-or-inline] → status; body in admin-last.json
    local body=${3:-}
    if [ -f "$body" ]; then body=$(cat "$body"); fi
    curl -s -o "$OUT/admin-last.json" -w '%{http_code}' -X "$1" "http://$adm$2" \
      -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' ${body:+--data "$body"}
  }
  must() { # expected-status method path [body]
    local want=$1; shift
    local code; code=$(admin "$@")
    [ "$code" = "$want" ] || { echo "$name: $1 $2 answered $code: $(cat "$OUT/admin-last.json")" >&2; exit 1; }
  }
  must 201 POST /teams '{"name":"bench","contact":"bench@example.com"}'
  must 201 POST /plans '{"name":"bench-unlimited","rate":{"requests":100000000,"per_seconds":1}}'
  for api in bench bench-noval; do
    local request=true
    [ "$api" = bench-noval ] && request=false
    must 201 POST /apis "{\"slug\":\"$api\",\"title\":\"Bench\",\"team\":\"bench\",\"validation\":{\"request\":$request}}"
    must 201 POST "/apis/$api/versions" bench/bench-api.json
    must 200 POST "/apis/$api/versions/1.0.0/publish" '{}'
    must 200 PUT "/apis/$api/majors/1/upstream" "{\"targets\":[{\"url\":\"http://$UP\",\"weight\":100}]}"
    must 201 POST /consumers/b2b-portal/subscriptions "{\"api\":\"$api\",\"plan\":\"bench-unlimited\"}"
  done
  must 201 POST /issuers "$OUT/issuer.json"
  must 201 POST /consumers/b2b-portal/keys '{}'
  KEY[$name]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["key"])' "$OUT/admin-last.json")
  wait_http "http://$proxy/bench/v1/items/42" 200 "X-API-Key: ${KEY[$name]}"
  wait_http "http://$proxy/bench-noval/v1/items/42" 200 "X-API-Key: ${KEY[$name]}"
  wait_http "http://$proxy/bench/v1/items/42" 200 "Authorization: Bearer $RS256"
}

GH_NODES=(gatehouse gh-redis gh-log-sqlite)
start_gatehouse gatehouse --access-log off
start_gatehouse gh-redis --access-log off --redis-url "redis://127.0.0.1:$REDIS_PORT"
start_gatehouse gh-log-sqlite --access-log on
if [ -n "$PG_BASE" ] && psql -q "$PG_BASE" -c "CREATE SCHEMA bench_$$" >/dev/null 2>&1; then
  PG_SCHEMA=bench_$$
  sep='?'; case "$PG_BASE" in *\?*) sep='&';; esac
  start_gatehouse gh-log-pg --access-log on --database-url "${PG_BASE}${sep}options=-c%20search_path%3D$PG_SCHEMA"
  GH_NODES+=(gh-log-pg)
else
  echo "== PostgreSQL not reachable at BENCH_POSTGRES_URL: gh-log-pg is skipped"
fi

# What each setup is: base URL, credential header, processes whose CPU is counted.
GH=${GH_PROXY[gatehouse]}
declare -A BASE=(
  [direct]="http://$UP" [nginx]="http://$NGINX/bench/v1" [haproxy]="http://$HAPROXY/bench/v1" [pingora-plain]="http://$PLAIN/bench/v1"
  [gatehouse]="http://$GH/bench/v1" [gatehouse-noval]="http://$GH/bench-noval/v1"
  [gatehouse-rs256]="http://$GH/bench/v1" [gatehouse-es256]="http://$GH/bench/v1"
  [haproxy-rs256]="http://$HAPROXY_RS/bench/v1" [haproxy-es256]="http://$HAPROXY_ES/bench/v1"
)
declare -A AUTH=(
  [direct]="X-Bench: none" [nginx]="X-Bench: none" [haproxy]="X-Bench: none" [pingora-plain]="X-Bench: none"
  [gatehouse]="X-API-Key: ${KEY[gatehouse]}" [gatehouse-noval]="X-API-Key: ${KEY[gatehouse]}"
  [gatehouse-rs256]="Authorization: Bearer $RS256" [gatehouse-es256]="Authorization: Bearer $ES256"
  [haproxy-rs256]="Authorization: Bearer $RS256" [haproxy-es256]="Authorization: Bearer $ES256"
)
declare -A PROC=(
  [direct]="" [nginx]="$NGINX_PID $NGINX_WORKERS" [haproxy]="$HAPROXY_PID" [pingora-plain]="$PLAIN_PID"
  [haproxy-rs256]="$HAPROXY_PID" [haproxy-es256]="$HAPROXY_PID"
  [gatehouse]="${GH_PID[gatehouse]}" [gatehouse-noval]="${GH_PID[gatehouse]}"
  [gatehouse-rs256]="${GH_PID[gatehouse]}" [gatehouse-es256]="${GH_PID[gatehouse]}"
)
for n in gh-redis gh-log-sqlite gh-log-pg; do
  [ -n "${GH_PID[$n]:-}" ] || continue
  BASE[$n]="http://${GH_PROXY[$n]}/bench/v1"; AUTH[$n]="X-API-Key: ${KEY[$n]}"; PROC[$n]=${GH_PID[$n]}
done
QUERY="/items?warehouse=WH-01&status=available&limit=100&since=2026-01-01T00:00:00Z&sku=SKU-10001,SKU-10002"
# The measurements: setup:kind. get = GET /items/42; post1k/post10k/post100k = POST /orders;
# query = the GET with five query parameters.
# The validation pairs (gatehouse, gatehouse-noval) run back to back, request by request, so
# each round gives a paired ratio that the machine's drift barely touches.
RUNS=()
for s in direct nginx haproxy pingora-plain; do
  [ -n "${BASE[$s]:-}" ] && RUNS+=("$s:get" "$s:post1k")
done
for k in get post1k; do RUNS+=("gatehouse:$k" "gatehouse-noval:$k"); done
for s in gh-redis gh-log-sqlite gh-log-pg; do
  [ -n "${BASE[$s]:-}" ] && RUNS+=("$s:get" "$s:post1k")
done
for s in haproxy-rs256 gatehouse-rs256 haproxy-es256 gatehouse-es256; do RUNS+=("$s:get"); done
for k in post10k post100k query; do RUNS+=("gatehouse:$k" "gatehouse-noval:$k"); done
# ONLY (setups) and KINDS (requests) keep the runs that match both; unset keeps all.
kept=()
for r in "${RUNS[@]}"; do
  [[ -z "${ONLY:-}" || " $ONLY " == *" ${r%%:*} "* ]] || continue
  [[ -z "${KINDS:-}" || " $KINDS " == *" ${r##*:} "* ]] || continue
  kept+=("$r")
done
RUNS=("${kept[@]}")
wrk_args() { # setup kind → wrk arguments, one per line
  local s=$1 kind=$2
  printf '%s\n' -H "${AUTH[$s]}"
  case $kind in
    get) printf '%s\n' "${BASE[$s]}/items/42" ;;
    query) printf '%s\n' "${BASE[$s]}$QUERY" ;;
    post1k) printf '%s\n' -s "$OUT/post-1k.lua" "${BASE[$s]}/orders" ;;
    post10k) printf '%s\n' -s "$OUT/post-10k.lua" "${BASE[$s]}/orders" ;;
    post100k) printf '%s\n' -s "$OUT/post-100k.lua" "${BASE[$s]}/orders" ;;
  esac
}
measure() { # setup kind round duration
  local s=$1 kind=$2 round=$3 duration=$4 before after args
  mapfile -t args < <(wrk_args "$s" "$kind")
  before=$(cpu_ticks ${PROC[$s]})
  local perf_pid=""
  if [[ " ${PERF:-} " == *" $s:$kind "* ]] && [ "$round" = 1 ]; then
    # A call-graph profile of the proxy during this measurement (`perf report -i …`).
    perf record -q -F 999 --call-graph "${PERF_CALLGRAPH:-dwarf,16384}" -o "$OUT/perf-$s-$kind.data" -p "$(echo ${PROC[$s]} | tr ' ' ',')" \
      -- sleep "${duration%s}" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  pin "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$duration" --latency "${args[@]}" >"$OUT/raw/$s-$kind-$round.txt"
  [ -n "$perf_pid" ] && wait "$perf_pid"
  after=$(cpu_ticks ${PROC[$s]})
  echo "$((after - before))" >"$OUT/raw/$s-$kind-$round.ticks"
}

echo "== warm-up (and every setup answers 2xx)"
for r in "${RUNS[@]}"; do
  measure "${r%%:*}" "${r##*:}" warmup 2s
  if grep -q 'Non-2xx' "$OUT/raw/${r%%:*}-${r##*:}-warmup.txt"; then
    echo "$r answers errors during warm-up:" >&2; cat "$OUT/raw/${r%%:*}-${r##*:}-warmup.txt" >&2; exit 1
  fi
  rm -f "$OUT/raw/${r%%:*}-${r##*:}-warmup."*
done
# Odd rounds run the list forwards, even rounds backwards (A B B A): a steady drift over the
# invocation then weighs on every setup alike.
REVERSED=()
for ((i = ${#RUNS[@]} - 1; i >= 0; i--)); do REVERSED+=("${RUNS[$i]}"); done
for round in $(seq 1 "$ROUNDS"); do
  if ((round % 2)); then ORDER=("${RUNS[@]}"); else ORDER=("${REVERSED[@]}"); fi
  for r in "${ORDER[@]}"; do
    echo "== round $round: $r"
    measure "${r%%:*}" "${r##*:}" "$round" "$DURATION"
  done
done

MAIN_PID=${GH_PID[gatehouse]}
PEAK_RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$MAIN_PID/status")
RSS_KB=$(awk '/VmRSS/ {print $2}' "/proc/$MAIN_PID/status")
for n in "${GH_NODES[@]}"; do
  curl -s "http://${GH_ADMIN[$n]}/metrics" >"$OUT/metrics-$n.txt"
  # The logging nodes must have stored every request they served, none dropped.
  for _ in $(seq 1 300); do
    curl -s "http://${GH_ADMIN[$n]}/readyz" >"$OUT/readyz-$n.json"
    python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["detail"].get("access_log") or {}; sys.exit(0 if not a.get("enabled") or (a.get("queue_depth",0)==0 and a.get("spool_bytes",0)==0) else 1)' "$OUT/readyz-$n.json" && break
    sleep 0.1
  done
done

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$OUT" "$PEAK_RSS_KB" "$RSS_KB" "$ROUNDS" "$DURATION" "$CONNS" "$PROXY_THREADS" "${FEATURES:-none}" \
  "$(getconf CLK_TCK)" "$LOAD" "$NICE" "$GATEHOUSE_BIN" <<'PY'
import glob, json, os, re, statistics, sys
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
    total = int(re.search(r"(\d+) requests in", text).group(1))
    ticks_file = path.replace(".txt", ".ticks")
    ticks = int(open(ticks_file).read()) if os.path.exists(ticks_file) else 0
    cpu_us = ticks * 1e6 / int(clk_tck) / total if total and ticks else float("nan")
    return rps, p50, p99, int(errors.group(1)) if errors else 0, cpu_us, total

rows, by_round = {}, {}
for path in glob.glob(f"{out}/raw/*.txt"):
    setup, kind, rnd = os.path.basename(path)[:-4].rsplit("-", 2)
    r = parse(path)
    rows.setdefault((setup, kind), []).append(r)
    by_round.setdefault((setup, kind), {})[rnd] = r
med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v),
           statistics.median(r[2] for r in v), sum(r[3] for r in v),
           statistics.median(r[4] for r in v), sum(r[5] for r in v))
       for k, v in rows.items()}

def line(setup, kind, label):
    rps, p50, p99, errs, cpu, _ = med[(setup, kind)]
    cpu_text = "" if setup == "direct" else f"{cpu:.1f}"
    return f"| {label} | {setup} | {rps:,.0f} | {p50:.3f} | {p99:.3f} | {cpu_text} | {errs} |"

def ratio(a, b, i=0):
    return f"{med[a][i] / med[b][i]:.2f}" if a in med and b in med else ""

head = ["| request | setup | requests/s | p50 ms | p99 ms | proxy CPU µs/request | non-2xx |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
L = [f"Gatehouse benchmark: median of {rounds} runs of {duration}, wrk -t1 -c{conns}; proxies pinned "
     f"to one core, wrk + upstream + Redis + PostgreSQL on the other; gatehouse proxy threads: {threads}, "
     f"features: {features}; nice {nice}; binary {gh_bin}; load average at the end: {load}.", ""]

L += ["### Data plane (issue 3)", ""] + head
for kind, label in (("get", "GET small JSON"), ("post1k", "POST 1 KB order")):
    for s in ("direct", "nginx", "haproxy", "pingora-plain", "gatehouse"):
        if (s, kind) in med:
            L.append(line(s, kind, label))
L += ["", "| request | gatehouse/nginx req/s | gatehouse/nginx p99 | gatehouse/haproxy req/s | gatehouse/direct req/s | nginx/gatehouse CPU per request | pingora-plain/nginx req/s | gatehouse/pingora-plain req/s | CPU µs over pingora-plain |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
for kind, label in (("get", "GET"), ("post1k", "POST 1 KB")):
    g, p = ("gatehouse", kind), ("pingora-plain", kind)
    if g in med and ("nginx", kind) in med:
        over = f"{med[g][4] - med[p][4]:+.1f}" if p in med else ""
        L.append(f"| {label} | {ratio(g, ('nginx', kind))} | {ratio(g, ('nginx', kind), 2)} | "
                 f"{ratio(g, ('haproxy', kind))} | {ratio(g, ('direct', kind))} | {ratio(('nginx', kind), g, 4)} | "
                 f"{ratio(p, ('nginx', kind))} | {ratio(g, p)} | {over} |")
L += ["", f"Gatehouse (main node) memory: peak RSS {int(peak_kb)/1024:.1f} MiB (VmHWM), RSS at the end "
      f"{int(rss_kb)/1024:.1f} MiB, bundled catalog seeded plus the bench APIs."]
g, n = med.get(("gatehouse", "get")), med.get(("nginx", "get"))
if g and n:
    ok = g[0] >= 0.8 * n[0] and g[2] <= 1.5 * n[2] and int(peak_kb) < 64 * 1024
    L.append(f"Performance bar (GET >= 0.8x nginx req/s, p99 <= 1.5x nginx, peak RSS < 64 MiB): "
             f"{'MET' if ok else 'NOT MET'} ({g[0]/n[0]:.2f}x req/s, {g[2]/n[2]:.2f}x p99)")

if any(k[0].endswith(("rs256", "es256")) for k in med):
    L += ["", "### Identity (issue 4): GET small JSON", "",
          "| setup | requests/s | p50 ms | p99 ms | proxy CPU µs/request | non-2xx | vs gatehouse (API key) | vs HAProxy jwt_verify |",
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s in ("gatehouse", "haproxy-rs256", "gatehouse-rs256", "haproxy-es256", "gatehouse-es256"):
        if (s, "get") in med:
            r = med[(s, "get")]
            h = ("haproxy-" + s.split("-")[1], "get") if "-" in s else None
            L.append(f"| {s} | {r[0]:,.0f} | {r[1]:.3f} | {r[2]:.3f} | {r[4]:.1f} | {r[3]} | "
                     f"{ratio((s, 'get'), ('gatehouse', 'get'))} | {ratio((s, 'get'), h) if h and s.startswith('gatehouse') else ''} |")

def compare(title, setups, kinds, base):
    present = [(s, k) for k in kinds for s in setups if (s, k) in med]
    if not present:
        return []
    t = ["", title, "", "| request | setup | requests/s | p50 ms | p99 ms | proxy CPU µs/request | non-2xx | vs " + base + " req/s | CPU µs over " + base + " |",
         "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s, k in present:
        r = med[(s, k)]
        b = med.get((base, k))
        t.append(f"| {k} | {s} | {r[0]:,.0f} | {r[1]:.3f} | {r[2]:.3f} | {r[4]:.1f} | {r[3]} | "
                 f"{r[0]/b[0]:.2f} | {r[4]-b[4]:+.1f} |" if b else f"| {k} | {s} | {r[0]:,.0f} | | | | | | |")
    return t

L += compare("### Rate limits (issue 5): `gatehouse` decides locally, `gh-redis` with one EVALSHA per request",
             ("gatehouse", "gh-redis"), ("get", "post1k"), "gatehouse")
L += compare("### Validation (issue 6): `gatehouse` validates, `gatehouse-noval` is the same spec with validation off",
             ("gatehouse-noval", "gatehouse"), ("post1k", "post10k", "post100k", "query", "get"), "gatehouse-noval")
def paired(a, b, i):
    """Per-round ratios a/b of field i over the rounds both were measured in."""
    ra, rb = by_round.get(a, {}), by_round.get(b, {})
    return [ra[r][i] / rb[r][i] for r in sorted(ra) if r in rb and rb[r][i]]

pairs = []
for k in ("post1k", "post10k", "post100k", "query", "get"):
    rps = paired(("gatehouse", k), ("gatehouse-noval", k), 0)
    cpu = paired(("gatehouse-noval", k), ("gatehouse", k), 4)
    if rps:
        pairs.append(f"| {k} | {statistics.median(rps):.2f} | {min(rps):.2f}–{max(rps):.2f} | "
                     f"{statistics.median(cpu):.2f} | {', '.join(f'{x:.2f}' for x in rps)} |")
if pairs:
    L += ["", "Paired per round (gatehouse measured right after or before gatehouse-noval): validated/unvalidated",
          "", "| request | req/s ratio, median | range | CPU-per-request ratio (noval/validated), median | every round |",
          "| --- | ---: | ---: | ---: | --- |"] + pairs
    p1 = paired(("gatehouse", "post1k"), ("gatehouse-noval", "post1k"), 0)
    if p1:
        m = statistics.median(p1)
        L.append(f"Validation bar (1 KB POST validated >= 0.90x unvalidated req/s, paired median): "
                 f"{'MET' if m >= 0.90 else 'NOT MET'} ({m:.2f}x over {len(p1)} rounds)")
for k, size in (("post10k", "post-10k.json"), ("post100k", "post-100k.json")):
    on, off = med.get(("gatehouse", k)), med.get(("gatehouse-noval", k))
    if on and off:
        b = os.path.getsize(f"{out}/{size}")
        extra = on[4] - off[4]
        rate = (b / extra) if extra > 0 else float("inf")
        L.append(f"{k}: {b} B body; validation adds {extra:.1f} µs CPU per request: {rate:,.0f} MB/s per core")
L += compare("### Access log (issue 8): `gatehouse` off, `gh-log-sqlite` / `gh-log-pg` on (the writer shares the proxy's core)",
             ("gatehouse", "gh-log-sqlite", "gh-log-pg"), ("get", "post1k"), "gatehouse")
for n in ("gh-log-sqlite", "gh-log-pg"):
    p = f"{out}/metrics-{n}.txt"
    if os.path.exists(p):
        m = dict(re.findall(r"^(gatehouse_access_records_\w+) (\d+)", open(p).read(), re.M))
        L.append(f"{n}: access records {', '.join(f'{k[25:]} {v}' for k, v in sorted(m.items()))}")
text = "\n".join(L)
print(text)
open(os.path.join(out, "results.md"), "w").write(text + "\n")
PY
