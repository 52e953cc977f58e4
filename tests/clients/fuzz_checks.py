"""Schemathesis checks for fuzzing the GraphQL API (loaded through SCHEMATHESIS_HOOKS).

A fuzzed request may be refused, but never with a server fault: no HTTP 5xx, and every
GraphQL error carries a client-facing `extensions.code` other than INTERNAL.
"""

import schemathesis


@schemathesis.check
def refused_cleanly(ctx, response, case):
    if response.status_code >= 500:
        raise AssertionError(f"HTTP {response.status_code}: {response.text[:300]}")
    if response.status_code == 429:  # Envoy's rate limit, when fuzzing through it
        return None
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"not JSON: {response.text[:300]}")
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if code is None or code == "INTERNAL":
            raise AssertionError(f"error without a client code: {error}")
    return None
