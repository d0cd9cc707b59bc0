#!/usr/bin/env bash
# Schemathesis against the gateway in front of a permissive upstream (hand-run, not in
# `make test` or CI; docs/validation.md, "Real-world specs").
#
#   bash tests/schemathesis/run.sh
#
# Installs schemathesis into tests/schemathesis/.venv when missing, uses the debug
# `target/debug/gatehouse` (built when missing), starts an upstream that answers 200 to
# anything (upstream.py) and `gatehouse serve` on free ports with a temporary data dir and
# the bundled catalog, moves the consumer b2b-portal to a plan no run reaches, points every
# bundled API and major at the upstream, then runs schemathesis on each bundled spec
# (specs/API/vN.yaml) against http://127.0.0.1:PORT/API/vN with positive data only
# (examples, coverage and fuzzing phases). Every 4xx the gateway answers a
# generated-valid request fails the check in hooks.py and is recorded with the exact
# request and the problem body. Then a negative pass (coverage and fuzzing phases): every
# request schemathesis generates as invalid must be refused, and each outcome is recorded
# (hooks.py, `gatehouse_refuses_invalid`). Prints requests and refusals per API, then the
# negative counts; exits 1 when any valid request was refused, any invalid one reached the
# upstream, any 5xx was answered, or schemathesis failed otherwise.
#
# Environment: MAX_EXAMPLES (per operation, default 100), SEED (default 1; "random" for a
# fresh one), WORKERS (default 2), GATEHOUSE_BIN (default target/debug/gatehouse),
# SCHEMATHESIS (pip requirement, default schemathesis==4.32.5). Logs and the recorded
# refusals go to tests/schemathesis/out/.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"

MAX_EXAMPLES=${MAX_EXAMPLES:-100}
SEED=${SEED:-1}
WORKERS=${WORKERS:-2}
BIN=${GATEHOUSE_BIN:-$ROOT/target/debug/gatehouse}
SCHEMATHESIS=${SCHEMATHESIS:-schemathesis==4.32.5}
VENV=$HERE/.venv
OUT=$HERE/out

if [ ! -x "$VENV/bin/schemathesis" ]; then
  echo "installing $SCHEMATHESIS into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "$SCHEMATHESIS"
fi
if [ ! -x "$BIN" ]; then
  echo "building $BIN"
  cargo build -p gatehouse-gateway --bin gatehouse
fi

rm -rf "$OUT"
mkdir -p "$OUT"
DATA=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$DATA"
}
trap cleanup EXIT

read -r UPSTREAM_PORT PROXY_PORT ADMIN_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks:
    s.close()')
ADMIN=http://127.0.0.1:$ADMIN_PORT
PROXY=http://127.0.0.1:$PROXY_PORT
GATEHOUSE_BOOTSTRAP_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
export GATEHOUSE_BOOTSTRAP_TOKEN

python3 "$HERE/upstream.py" "$UPSTREAM_PORT" > "$OUT/upstream.log" 2>&1 &
PIDS+=($!)
"$BIN" serve --data-dir "$DATA" --seed-catalog specs/catalog.yaml \
  --proxy-listen "127.0.0.1:$PROXY_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
  > "$OUT/gatehouse.log" 2>&1 &
PIDS+=($!)

wait_until() { # description, command...
  local what=$1; shift
  for _ in $(seq 1 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $what (logs in $OUT)" >&2
  exit 1
}
http_ok() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1"; }
snapshot_current() { # the gateway's snapshot has caught up with the registry
  python3 -c '
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1] + "/metrics", timeout=2).read().decode()
sys.exit(0 if "\ngatehouse_snapshot_behind 0\n" in "\n" + text else 1)' "$ADMIN"
}
wait_until "the upstream" http_ok "http://127.0.0.1:$UPSTREAM_PORT/"
wait_until "gatehouse" http_ok "$ADMIN/readyz"

# Every bundled spec: specs/API/vN.yaml.
TARGETS=()
for spec in specs/*/v*.yaml; do
  api=$(basename "$(dirname "$spec")")
  major=$(basename "$spec" .yaml); major=${major#v}
  TARGETS+=("$api:$major")
done

KEY=$(python3 "$HERE/gatehouse.py" setup "$ADMIN" "http://127.0.0.1:$UPSTREAM_PORT" "${TARGETS[@]}")
sleep 0.6
wait_until "the snapshot" snapshot_current

export SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
export GATEHOUSE_REFUSALS=$OUT/refusals.jsonl
export GATEHOUSE_NEGATIVE=$OUT/negative.jsonl
seed_args=()
[ "$SEED" = random ] || seed_args=(--seed "$SEED")
schemathesis_run() { # api major log mode phases checks
  # From $OUT: schemathesis keeps its cache in ./.schemathesis.
  (cd "$OUT" && GATEHOUSE_API="$1/v$2" "$VENV/bin/schemathesis" run "$ROOT/specs/$1/v$2.yaml" \
      --url "$PROXY/$1/v$2" \
      --mode "$4" \
      --phases "$5" \
      --checks "$6" \
      --continue-on-failure \
      --header "X-API-Key: $KEY" \
      --generation-with-security-parameters false \
      --max-examples "$MAX_EXAMPLES" \
      --workers "$WORKERS" \
      "${seed_args[@]}" \
      --no-color \
      > "$OUT/$3" 2>&1)
}
FAILED=()
for target in "${TARGETS[@]}"; do
  api=${target%:*}; major=${target#*:}
  echo "=== $api/v$major: schemathesis, positive data, against $PROXY/$api/v$major"
  if ! schemathesis_run "$api" "$major" "$api-v$major.log" positive examples,coverage,fuzzing \
      not_a_server_error,gatehouse_accepts_valid; then
    FAILED+=("$api/v$major")
  fi
  tail -n 4 "$OUT/$api-v$major.log" | sed 's/^/    /'
done

echo
python3 "$HERE/gatehouse.py" report "$ADMIN" "$GATEHOUSE_REFUSALS" "${TARGETS[@]}" && report=0 || report=$?

# Then negative data: requests generated to violate the spec must all be refused. Undeclared
# query parameters are among the negations, and the default policy lets them through, so
# every API is switched to refusing them first.
python3 "$HERE/gatehouse.py" strict "$ADMIN" "${TARGETS[@]}"
sleep 0.6
wait_until "the snapshot" snapshot_current
for target in "${TARGETS[@]}"; do
  api=${target%:*}; major=${target#*:}
  echo "=== $api/v$major: schemathesis, negative data (every case must be refused)"
  # Every outcome is recorded by the check; the summary judges them (exit status ignored).
  schemathesis_run "$api" "$major" "$api-v$major-negative.log" negative coverage,fuzzing \
    not_a_server_error,gatehouse_refuses_invalid || true
  tail -n 2 "$OUT/$api-v$major-negative.log" | sed 's/^/    /'
done
echo
python3 "$HERE/gatehouse.py" negative "$GATEHOUSE_NEGATIVE" || report=1
if [ "${#FAILED[@]}" -gt 0 ]; then
  echo "schemathesis failed for: ${FAILED[*]} (logs in $OUT)"
  exit 1
fi
exit "$report"
