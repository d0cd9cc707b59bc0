"""Schemathesis hooks for tests/schemathesis/run.sh (loaded through SCHEMATHESIS_HOOKS).

`gatehouse_refuses_invalid`: for requests generated as *invalid* (negative mode), any 2xx
means the request reached the upstream. Every negative case's outcome is appended to the
JSON-lines file named by GATEHOUSE_NEGATIVE (what was negated, the status, the request), and
an accepted one fails the check.

`gatehouse_accepts_valid`: the upstream behind the gateway answers 200 to everything, so
any 4xx a generated-valid request gets was the gateway's refusal. Each one fails the check
and is appended, with the exact request and the gateway's problem body, to the JSON-lines
file named by GATEHOUSE_REFUSALS, for run.sh's summary.
"""

import base64
import json
import os
import urllib.parse

import schemathesis

# The gateway's validation refusals (docs/validation.md); any other 4xx is also a failure,
# reported under its own problem type.
VALIDATION_TYPES = {
    "urn:gatehouse:problem:validation-failed",
    "urn:gatehouse:problem:payload-too-large",
    "urn:gatehouse:problem:unsupported-media-type",
    "urn:gatehouse:problem:length-required",
}


def _text(data):
    if data is None:
        return None
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode("ascii")


def _record(entry):
    path = os.environ.get("GATEHOUSE_REFUSALS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")


def _phase(meta):
    if meta is None:
        return None
    name = getattr(meta.phase.name, "value", str(meta.phase.name))
    description = getattr(meta.phase.data, "description", None)
    return f"{name}: {description}" if description else name


@schemathesis.check
def gatehouse_accepts_valid(ctx, response, case):
    if not 400 <= response.status_code < 500:
        return None
    meta = case.meta
    if meta is not None and not meta.generation.mode.is_positive:
        return None
    try:
        problem = json.loads(response.content)
    except ValueError:
        problem = {"raw": _text(response.content)}
    kind = problem.get("type", "(not problem+json)") if isinstance(problem, dict) else "?"
    request = response.request
    headers = {k: v for k, v in request.headers.items() if k.lower() != "x-api-key"}
    _record(
        {
            "api": os.environ.get("GATEHOUSE_API", ""),
            "operation": case.operation.label,
            "phase": _phase(meta),
            "status": response.status_code,
            "type": kind,
            "validation": kind in VALIDATION_TYPES,
            "method": request.method,
            "url": request.url,
            "headers": headers,
            "body": _text(request.body),
            "problem": problem,
        }
    )
    errors = problem.get("errors") if isinstance(problem, dict) else None
    raise AssertionError(
        f"the gateway refused a request generated as valid: {response.status_code} {kind}"
        + (f"\n{json.dumps(errors, ensure_ascii=False)[:600]}" if errors else "")
    )


def _negated(meta):
    """Which parts of the request the negative case made invalid, e.g. {"body": "negative"}."""
    out = {}
    for location, info in (getattr(meta, "components", None) or {}).items():
        mode = getattr(getattr(info, "mode", None), "value", str(getattr(info, "mode", "")))
        out[getattr(location, "value", str(location))] = mode
    return out


def _still_invalid(case, meta, url):
    """False for a case whose only negation was an undeclared query parameter that the sent
    request does not carry: schemathesis shrinks a failing case and may drop the extra
    parameter (or give it a value, such as an empty list, that serialises to nothing) while
    keeping the case labelled negative. Everything else is taken as invalid."""
    negated = {k for k, v in _negated(meta).items() if v == "negative"}
    phase = _phase(meta) or ""
    if negated != {"query"} or "additionalProperties" not in phase or "required" in phase:
        return True
    declared = {p.name for p in case.operation.query}
    sent = {k for k, _ in urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True)}
    return not sent <= declared


@schemathesis.check
def gatehouse_refuses_invalid(ctx, response, case):
    meta = case.meta
    if meta is None or meta.generation.mode.is_positive:
        return None
    request = response.request
    invalid = _still_invalid(case, meta, request.url)
    accepted = 200 <= response.status_code < 300 and invalid
    headers = {k: v for k, v in request.headers.items() if k.lower() != "x-api-key"}
    path = os.environ.get("GATEHOUSE_NEGATIVE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({
                "api": os.environ.get("GATEHOUSE_API", ""),
                "operation": case.operation.label,
                "phase": _phase(meta),
                "negated": _negated(meta),
                "status": response.status_code,
                "accepted": accepted,
                # Labelled negative by schemathesis but sending only declared, valid-looking
                # parameters after shrinking (see `_still_invalid`); not counted either way.
                "not_invalid": not invalid,
                "method": request.method,
                "url": request.url,
                "headers": headers if accepted else None,
                "body": _text(request.body) if accepted else None,
            }, ensure_ascii=False) + "\n")
    if accepted:
        raise AssertionError(
            f"the gateway let a request generated as invalid reach the upstream: {response.status_code}"
        )
    return None
