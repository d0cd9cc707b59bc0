"""Schemathesis hooks for tests/schemathesis/run.sh (loaded through SCHEMATHESIS_HOOKS).

`gatehouse_accepts_valid`: the upstream behind the gateway answers 200 to everything, so
any 4xx a generated-valid request gets was the gateway's refusal. Each one fails the check
and is appended, with the exact request and the gateway's problem body, to the JSON-lines
file named by GATEHOUSE_REFUSALS, for run.sh's summary.
"""

import base64
import json
import os

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
