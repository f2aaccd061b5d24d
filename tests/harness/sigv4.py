# SPDX-License-Identifier: Apache-2.0
"""Server-side check of a SigV4 Authorization header (AWS4-HMAC-SHA256, and
Google's GOOG4-HMAC-SHA256 variant), for the test servers that front the
stores (gcs_server.py, s3_sigv4_proxy.py).  Written from AWS's published
signing steps; the tests show it agrees with the official clients' signers.
"""

import hashlib
import hmac
import urllib.parse


def canonical_query(query):
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    enc = [(urllib.parse.quote(k, safe="-_.~"), urllib.parse.quote(v, safe="-_.~")) for k, v in pairs]
    return "&".join("%s=%s" % kv for kv in sorted(enc))


def check(method, raw_path, headers, payload, keys, vendor="aws"):
    """None when the request's signature holds for one of keys {access id: secret}, else
    why not.  vendor: "aws" (AWS4, x-amz-*) or "goog" (GOOG4, x-goog-*)."""
    algo = "%s4-HMAC-SHA256" % vendor.upper()
    hp = "amz" if vendor == "aws" else "goog"
    auth = headers.get("Authorization", "")
    if not auth.startswith(algo + " "):
        return "not signed with " + algo
    try:
        fields = dict(p.strip().split("=", 1) for p in auth[len(algo) + 1:].split(","))
        access, date, region, service, term = fields["Credential"].split("/")
        signed = fields["SignedHeaders"].split(";")
    except (KeyError, ValueError):
        return "malformed Authorization header"
    secret = keys.get(access)
    if secret is None:
        return "unknown access key id"
    if term != "%s4_request" % vendor:
        return "bad credential scope"
    if "host" not in signed:
        return "host is not signed"
    payload_hash = headers.get("x-%s-content-sha256" % hp, "")
    if vendor == "goog" and not payload_hash:
        payload_hash = "UNSIGNED-PAYLOAD"
    if payload_hash not in ("UNSIGNED-PAYLOAD", hashlib.sha256(payload).hexdigest()):
        return "payload does not match x-%s-content-sha256" % hp
    url = urllib.parse.urlsplit(raw_path)
    canon_headers = "".join("%s:%s\n" % (h, " ".join((headers.get(h) or "").split())) for h in signed)
    creq = "\n".join([method, url.path, canonical_query(url.query), canon_headers,
                      ";".join(signed), payload_hash])
    stamp = headers.get("x-%s-date" % hp, "")
    sts = "\n".join([algo, stamp, "/".join([date, region, service, term]),
                     hashlib.sha256(creq.encode()).hexdigest()])
    key = (vendor.upper() + "4" + secret).encode()
    for part in (date, region, service, term):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    want = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, fields.get("Signature", "")):
        return "signature does not match"
    return None
