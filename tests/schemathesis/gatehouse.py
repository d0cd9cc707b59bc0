"""Admin-API setup and the summary for tests/schemathesis/run.sh (standard library only).

    python3 gatehouse.py setup ADMIN_URL UPSTREAM_URL API:MAJOR...   # prints an API key
    python3 gatehouse.py report ADMIN_URL REFUSALS_FILE API:MAJOR...
    python3 gatehouse.py strict ADMIN_URL API:MAJOR...
    python3 gatehouse.py negative NEGATIVE_FILE

The admin token is read from GATEHOUSE_BOOTSTRAP_TOKEN.

`setup` creates a plan whose rate no test run reaches (so no request is answered 429),
moves every subscription of the consumer `b2b-portal` to it (same majors and scopes),
points each API:MAJOR at the permissive upstream, and issues a key for b2b-portal.

`report` reads the gateway's /metrics (requests per API and major, by status class and
outcome; validation refusals by status) and the refusals the schemathesis check recorded,
prints them, and exits 1 when any generated-valid request was refused.

`strict` turns on `reject_unknown_query_params` for every API, before the negative pass.

`negative` reads the outcomes the negative-data check recorded, prints the counts (refused,
accepted) and every accepted kind, and exits 1 when any invalid request reached the upstream
or was answered 5xx.
"""

import collections
import json
import os
import re
import sys
import urllib.error
import urllib.request

CONSUMER = "b2b-portal"
PLAN = "schemathesis-unlimited"


def call(admin, method, path, body=None, accept_error=()):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(admin + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + os.environ["GATEHOUSE_BOOTSTRAP_TOKEN"])
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read()
            return resp.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        text = e.read().decode(errors="replace")
        if e.code in accept_error:
            return e.code, None
        sys.exit(f"{method} {path}: {e.code} {text}")


def setup(admin, upstream, targets):
    call(
        admin,
        "POST",
        "/plans",
        {"name": PLAN, "rate": {"requests": 1000000, "per_seconds": 1, "burst": 1000000}},
        accept_error=(409,),
    )
    _, subs = call(admin, "GET", f"/consumers/{CONSUMER}/subscriptions")
    subscribed = set()
    for s in subs["items"]:
        call(
            admin,
            "POST",
            f"/consumers/{CONSUMER}/subscriptions",
            {"api": s["api"], "majors": s["majors"], "plan": PLAN, "scopes": s["scopes"]},
        )
        subscribed.add(s["api"])
    for t in targets:
        api, major = t.split(":")
        if api not in subscribed:
            sys.exit(f"{CONSUMER} is not subscribed to {api}")
        call(
            admin,
            "PUT",
            f"/apis/{api}/majors/{major}/upstream",
            {"targets": [{"url": upstream, "weight": 100}], "read_timeout_ms": 10000},
        )
    _, key = call(admin, "POST", f"/consumers/{CONSUMER}/keys", {})
    print(key["key"])


def strict(admin, targets):
    """Turns on `reject_unknown_query_params` for every API (the negative pass sends
    undeclared query parameters, which the default policy lets through)."""
    for api in sorted({t.split(":")[0] for t in targets}):
        _, policy = call(admin, "GET", f"/apis/{api}/validation")
        policy["reject_unknown_query_params"] = True
        call(admin, "PUT", f"/apis/{api}/validation", policy)


METRIC = re.compile(r'^(\w+)\{([^}]*)\} (\d+)$')


def metrics(admin):
    with urllib.request.urlopen(admin + "/metrics", timeout=30) as resp:
        text = resp.read().decode()
    out = []
    for line in text.splitlines():
        m = METRIC.match(line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            out.append((m.group(1), labels, int(m.group(3))))
    return out


def report(admin, refusals_file, targets):
    sent = collections.Counter()
    classes = collections.defaultdict(collections.Counter)
    validation = collections.Counter()
    for name, labels, n in metrics(admin):
        key = f'{labels.get("api")}/v{labels.get("major")}'
        if name == "gatehouse_requests_total":
            sent[key] += n
            classes[key][labels["class"]] += n
        elif name == "gatehouse_request_validation_refusals_total":
            validation[key] += n
    refused = []
    if os.path.exists(refusals_file):
        with open(refusals_file, encoding="utf-8") as f:
            refused = [json.loads(line) for line in f if line.strip()]
    by_api = collections.Counter(r["api"] for r in refused)

    print(f"{'API':<16} {'requests':>9} {'2xx':>7} {'4xx':>6} {'5xx':>6} "
          f"{'validation refusals':>20} {'valid refused':>14}")
    total = collections.Counter()
    for t in targets:
        api, major = t.split(":")
        key = f"{api}/v{major}"
        row = (sent[key], classes[key]["2xx"], classes[key]["4xx"], classes[key]["5xx"],
               validation[key], by_api[key])
        total.update(dict(zip(("sent", "2xx", "4xx", "5xx", "val", "ref"), row)))
        print(f"{key:<16} {row[0]:>9} {row[1]:>7} {row[2]:>6} {row[3]:>6} {row[4]:>20} {row[5]:>14}")
    print(f"{'total':<16} {total['sent']:>9} {total['2xx']:>7} {total['4xx']:>6} {total['5xx']:>6} "
          f"{total['val']:>20} {total['ref']:>14}")
    print("(requests: as the gateway counted them, gatehouse_requests_total; valid refused: "
          "generated-valid requests the gateway answered 4xx, recorded by the check)")
    if refused:
        print(f"\n{len(refused)} generated-valid requests refused; the first of each kind "
              f"(all in {refusals_file}):")
        seen = set()
        for r in refused:
            kind = (r["operation"], r["type"])
            if kind in seen:
                continue
            seen.add(kind)
            print(f"- {r['api']} {r['operation']} ({r['phase']}): {r['status']} {r['type']}")
            print(f"  {r['method']} {r['url']}")
            print(f"  headers: {json.dumps(r['headers'], ensure_ascii=False)}")
            if r["body"]:
                print(f"  body: {r['body'][:400]}")
            errors = r["problem"].get("errors") if isinstance(r["problem"], dict) else None
            print(f"  problem: {json.dumps(errors or r['problem'], ensure_ascii=False)[:600]}")
    return 1 if refused or total["5xx"] else 0


def negative(negative_file):
    """Counts of the negative pass: cases generated invalid, refused (4xx), accepted (2xx,
    i.e. they reached the upstream), and the accepted ones, first of each kind."""
    cases = []
    if os.path.exists(negative_file):
        with open(negative_file, encoding="utf-8") as f:
            cases = [json.loads(line) for line in f if line.strip()]
    per_api = collections.defaultdict(collections.Counter)
    statuses = collections.Counter()
    for c in cases:
        row = per_api[c["api"]]
        row["cases"] += 1
        if c.get("not_invalid") and not 400 <= c["status"] < 500:
            row["not invalid"] += 1
        else:
            row["accepted" if c["accepted"] else "refused"] += 1
        statuses[c["status"]] += 1
    print(f"{'API':<16} {'negative cases':>15} {'refused':>8} {'accepted':>9} {'not invalid':>12}")
    total = collections.Counter()
    for api in sorted(per_api):
        row = per_api[api]
        total.update(row)
        print(f"{api:<16} {row['cases']:>15} {row['refused']:>8} {row['accepted']:>9} {row['not invalid']:>12}")
    print(f"{'total':<16} {total['cases']:>15} {total['refused']:>8} {total['accepted']:>9} {total['not invalid']:>12}")
    print("(not invalid: labelled negative, but schemathesis's shrinking had removed the "
          "undeclared query parameter that made it so; the gateway forwarded a valid request)")
    print("statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
    accepted = [c for c in cases if c["accepted"]]
    if accepted:
        print(f"\n{len(accepted)} requests generated as invalid reached the upstream; the first "
              f"of each kind (all in {negative_file}):")
        seen = set()
        for c in accepted:
            kind = (c["api"], c["operation"], json.dumps(c["negated"], sort_keys=True))
            if kind in seen:
                continue
            seen.add(kind)
            print(f"- {c['api']} {c['operation']} ({c['phase']}), negated {c['negated']}: {c['status']}")
            print(f"  {c['method']} {c['url']}")
            if c.get("body"):
                print(f"  body: {c['body'][:300]}")
    errors = sum(n for status, n in statuses.items() if status >= 500)
    if errors:
        print(f"\n{errors} negative cases were answered 5xx")
    return 1 if accepted or errors or not cases else 0


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "setup":
        setup(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "report":
        sys.exit(report(sys.argv[2], sys.argv[3], sys.argv[4:]))
    elif len(sys.argv) >= 3 and sys.argv[1] == "strict":
        strict(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 3 and sys.argv[1] == "negative":
        sys.exit(negative(sys.argv[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
