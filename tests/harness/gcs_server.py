# SPDX-License-Identifier: Apache-2.0
"""A Google Cloud Storage test server on loopback (no emulator is packaged).

It speaks the two APIs the tests use, and nothing else:

* the XML API that airlock-harness uses (PUT/GET/DELETE of an object, and the
  S3-compatible multipart upload), with every request's GOOG4-HMAC-SHA256
  signature checked against the HMAC keys it was given (a bad signature, a
  payload that does not match its signed hash, or an unknown key is refused
  with 403 as GCS does), or its Bearer access token (401 when unknown);
* the JSON API that the official `@google-cloud/storage` client uses against
  a custom endpoint (object metadata, media download with x-goog-hash, simple
  and multipart uploads, delete, list).  The tests prove the server is
  honest by driving it with that client (tests/harness/store_client.js).
  Also what rclone's GCS backend sends (the mounts' tests): listing with a
  delimiter (prefixes), metadata patches, and rewrite (its server-side copy).
  Given access tokens (--token), every JSON API call must carry one as a
  Bearer token, else 401 as GCS answers;
* the OAuth 2.0 token endpoint (POST /token) a service account's key file
  names as its token_uri: a JWT-bearer grant (RFC 7523) whose RS256 assertion
  must verify with the public key of a service account given with
  --service-account EMAIL:PUBLIC.pem, be issued by that account, addressed to
  this token_uri and unexpired; the access token it returns is accepted by the
  JSON API from then on.  This is how Google's auth libraries exchange a key
  file (rclone's, through golang.org/x/oauth2's JWTConfigFromJSON).

Objects are kept in memory.
Run: python3 gcs_server.py PORT BUCKET [ID:SECRET...] [--token T] [--service-account E:PEM]
"""

import base64
import datetime
import email.parser
import hashlib
import json
import os
import secrets
import time
import sys
import threading
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sigv4  # noqa: E402


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return (c ^ 0xFFFFFFFF).to_bytes(4, "big")


class Store:
    def __init__(self, buckets, keys, tokens=(), accounts=None):
        self.lock = threading.Lock()
        self.tokens = set(tokens)  # Bearer tokens accepted (given, or from /token)
        self.require_bearer = bool(tokens)  # the JSON API checks them only if given
        self.accounts = accounts or {}  # service account email -> public key
        self.requests = []  # "METHOD path" of JSON API calls, for the tests
        self.buckets = {b: {} for b in buckets}
        self.keys = keys  # access id -> secret
        self.uploads = {}  # upload id -> (bucket, name, metadata, {part: bytes})
        self.generation = 1

    def put(self, bucket, name, data, metadata, content_type="application/octet-stream"):
        with self.lock:
            self.generation += 1
            obj = {"data": data, "metadata": dict(metadata), "content_type": content_type,
                   "md5": base64.b64encode(hashlib.md5(data).digest()).decode(),
                   "crc32c": base64.b64encode(crc32c(data)).decode(),
                   "generation": self.generation,
                   "updated": datetime.datetime.now(datetime.timezone.utc).isoformat()}
            self.buckets[bucket][name] = obj
            return obj


def resource(bucket, name, obj, host=None):
    data = obj["data"]
    res = {
        "kind": "storage#object", "id": "%s/%s/%d" % (bucket, name, obj["generation"]),
        "name": name, "bucket": bucket, "generation": str(obj["generation"]),
        "metageneration": "1", "contentType": obj["content_type"], "size": str(len(data)),
        "md5Hash": obj["md5"], "crc32c": obj["crc32c"],
        "etag": hashlib.md5(data).hexdigest(), "timeCreated": obj["updated"],
        "updated": obj["updated"], "storageClass": "STANDARD",
        "metadata": obj["metadata"],
    }
    if host:
        # Where GCS says to download it from (rclone's backend reads from here).
        path = "b/%s/o/%s" % (urllib.parse.quote(bucket, safe=""), urllib.parse.quote(name, safe=""))
        res["selfLink"] = "http://%s/storage/v1/%s" % (host, path)
        res["mediaLink"] = "http://%s/download/storage/v1/%s?generation=%d&alt=media" % (
            host, path, obj["generation"])
    return res


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store = None

    def log_message(self, fmt, *args):
        pass

    # ---- helpers ----
    def body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            # http.server leaves chunked bodies (the Node client's uploads) to us.
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, status, body=b"", headers=None, content_type="application/xml"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def xml_error(self, status, code, message):
        self.send(status, "<?xml version='1.0' encoding='UTF-8'?><Error><Code>%s</Code>"
                  "<Message>%s</Message></Error>" % (code, message))

    def json_error(self, status, message):
        self.send(status, json.dumps({"error": {"code": status, "message": message,
                                                "errors": [{"message": message}]}}),
                  content_type="application/json")

    def check_signature(self, payload):
        """The GOOG4-HMAC-SHA256 header signature; None when it holds, else why not."""
        return sigv4.check(self.command, self.path, self.headers, payload, self.store.keys, "goog")

    # ---- dispatch ----
    def do_GET(self):
        self.route()

    def do_PUT(self):
        self.route()

    def do_POST(self):
        self.route()

    def do_DELETE(self):
        self.route()

    def do_PATCH(self):
        self.route()

    def route(self):
        payload = self.body()
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        if url.path == "/token" and self.command == "POST":
            return self.token_endpoint(payload)
        if url.path.startswith("/storage/v1/b/") or url.path.startswith("/upload/storage/v1/b/") \
                or url.path.startswith("/download/storage/v1/b/"):
            return self.json_api(url, q, payload)
        return self.xml_api(url, q, payload)

    # ---- the XML API (signed) ----
    def xml_api(self, url, q, payload):
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Bearer "):
            # An OAuth 2.0 access token, as the XML API also takes.
            if auth[7:] not in self.store.tokens:
                return self.xml_error(401, "AuthenticationRequired", "Invalid Credentials")
        else:
            why = self.check_signature(payload)
            if why:
                return self.xml_error(403, "SignatureDoesNotMatch", why)
        parts = url.path.lstrip("/").split("/", 1)
        bucket = urllib.parse.unquote(parts[0])
        name = urllib.parse.unquote(parts[1]) if len(parts) > 1 else ""
        if bucket not in self.store.buckets:
            return self.xml_error(404, "NoSuchBucket", "The specified bucket does not exist.")
        objs = self.store.buckets[bucket]
        meta = {k[len("x-goog-meta-"):]: v for k, v in self.headers.items()
                if k.lower().startswith("x-goog-meta-")}
        if self.command == "POST" and "uploads" in q:
            uid = uuid.uuid4().hex
            self.store.uploads[uid] = (bucket, name, meta, {})
            return self.send(200, "<?xml version='1.0' encoding='UTF-8'?>"
                             "<InitiateMultipartUploadResult><Bucket>%s</Bucket><Key>%s</Key>"
                             "<UploadId>%s</UploadId></InitiateMultipartUploadResult>"
                             % (bucket, name, uid))
        if "uploadId" in q:
            up = self.store.uploads.get(q["uploadId"])
            if not up or up[:2] != (bucket, name):
                return self.xml_error(404, "NoSuchUpload", "The specified upload does not exist.")
            if self.command == "PUT" and "partNumber" in q:
                up[3][int(q["partNumber"])] = payload
                return self.send(200, headers={"ETag": '"%s"' % hashlib.md5(payload).hexdigest()})
            if self.command == "DELETE":
                del self.store.uploads[q["uploadId"]]
                return self.send(204)
            if self.command == "POST":
                doc = ET.fromstring(payload)
                numbers = [int(p.find("PartNumber").text) for p in doc.findall("Part")]
                etags = [p.find("ETag").text for p in doc.findall("Part")]
                for n, tag in zip(numbers, etags):
                    if n not in up[3] or tag.strip('"') != hashlib.md5(up[3][n]).hexdigest():
                        return self.xml_error(400, "InvalidPart", "part %d does not match" % n)
                data = b"".join(up[3][n] for n in numbers)
                self.store.put(bucket, name, data, up[2])
                del self.store.uploads[q["uploadId"]]
                return self.send(200, "<?xml version='1.0' encoding='UTF-8'?>"
                                 "<CompleteMultipartUploadResult><Key>%s</Key>"
                                 "</CompleteMultipartUploadResult>" % name)
        if self.command == "PUT":
            self.store.put(bucket, name, payload, meta)
            return self.send(200, headers={"ETag": '"%s"' % hashlib.md5(payload).hexdigest()})
        obj = objs.get(name)
        if obj is None:
            return self.xml_error(404, "NoSuchKey", "The specified key does not exist.")
        if self.command == "DELETE":
            del objs[name]
            return self.send(204)
        headers = {"x-goog-meta-" + k: v for k, v in obj["metadata"].items()}
        headers["x-goog-hash"] = "crc32c=%s,md5=%s" % (obj["crc32c"], obj["md5"])
        return self.send(200, obj["data"], headers, content_type=obj["content_type"])

    # ---- the OAuth 2.0 token endpoint (a service account's token_uri) ----
    def token_endpoint(self, payload):
        form = dict(urllib.parse.parse_qsl(payload.decode()))
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self.oauth_error("unsupported_grant_type", form.get("grant_type"))
        try:
            head_b64, claims_b64, sig_b64 = form["assertion"].split(".")
            unb64 = lambda x: base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))  # noqa: E731
            head, claims = json.loads(unb64(head_b64)), json.loads(unb64(claims_b64))
            key = self.store.accounts[claims["iss"]]
        except (KeyError, ValueError):
            return self.oauth_error("invalid_grant", "malformed assertion or unknown issuer")
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        try:
            if head.get("alg") != "RS256":
                raise InvalidSignature()
            key.verify(unb64(sig_b64), (head_b64 + "." + claims_b64).encode(),
                       padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return self.oauth_error("invalid_grant", "Invalid JWT Signature.")
        host = self.headers.get("Host")
        now = time.time()
        if claims.get("aud") != "http://%s/token" % host:
            return self.oauth_error("invalid_grant", "Invalid JWT: aud %s" % claims.get("aud"))
        if not claims.get("scope") or not (claims.get("iat", 0) - 300 <= now < claims.get("exp", 0)):
            return self.oauth_error("invalid_grant", "Invalid JWT: scope or times")
        token = "ya29.test-" + secrets.token_hex(16)
        self.store.tokens.add(token)
        return self.send(200, json.dumps({"access_token": token, "expires_in": 3599,
                                          "token_type": "Bearer"}),
                         content_type="application/json")

    def oauth_error(self, code, description):
        self.send(400, json.dumps({"error": code, "error_description": str(description)}),
                  content_type="application/json")

    # ---- the JSON API (the official client's) ----
    def json_api(self, url, q, payload):
        if self.store.require_bearer:
            auth = self.headers.get("Authorization") or ""
            if not auth.startswith("Bearer ") or auth[7:] not in self.store.tokens:
                return self.json_error(401, "Invalid Credentials")
        self.store.requests.append("%s %s" % (self.command, url.path))
        path = url.path.split("/")
        # /storage/v1/b/B/o[/NAME] or /upload/storage/v1/b/B/o
        base = 1 if path[1] == "storage" else 2
        bucket = urllib.parse.unquote(path[base + 3])
        if bucket not in self.store.buckets:
            return self.json_error(404, "bucket %s not found" % bucket)
        objs = self.store.buckets[bucket]
        if path[1] == "upload":
            if q.get("uploadType") == "multipart":
                ctype = self.headers.get("Content-Type", "")
                msg = email.parser.BytesParser().parsebytes(
                    b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + payload)
                meta_part, media = msg.get_payload()
                res = json.loads(meta_part.get_payload(decode=True))
                data = media.get_payload(decode=True)
                name = res.get("name") or q.get("name")
                obj = self.store.put(bucket, name, data, res.get("metadata") or {},
                                     res.get("contentType") or media.get_content_type())
            elif q.get("uploadType") == "media":
                name = q["name"]
                obj = self.store.put(bucket, name, payload, {})
            else:
                return self.json_error(400, "uploadType %s is not served here" % q.get("uploadType"))
            return self.send(200, json.dumps(resource(bucket, name, obj, self.headers.get("Host"))),
                             content_type="application/json")
        if len(path) <= base + 5 or not path[base + 5]:
            prefix, delim = q.get("prefix", ""), q.get("delimiter", "")
            items, prefixes = [], set()
            for n, o in sorted(objs.items()):
                if not n.startswith(prefix):
                    continue
                cut = n.find(delim, len(prefix)) if delim else -1
                if cut >= 0:
                    prefixes.add(n[:cut + len(delim)])
                else:
                    items.append(resource(bucket, n, o, self.headers.get("Host")))
            out = {"kind": "storage#objects", "items": items}
            if prefixes:
                out["prefixes"] = sorted(prefixes)
            return self.send(200, json.dumps(out), content_type="application/json")
        # .../o/SRC/rewriteTo/b/DSTBUCKET/o/DST and copyTo: a server-side copy.
        rest = path[base + 5:]
        for verb in ("rewriteTo", "copyTo"):
            if verb in rest and self.command == "POST":
                i = rest.index(verb)
                src = objs.get(urllib.parse.unquote("/".join(rest[:i])))
                dbucket = urllib.parse.unquote(rest[i + 2])
                dname = urllib.parse.unquote("/".join(rest[i + 4:]))
                if src is None or dbucket not in self.store.buckets:
                    return self.json_error(404, "No such object or bucket")
                res = json.loads(payload or b"{}") or {}
                meta = res.get("metadata") if res.get("metadata") is not None else src["metadata"]
                obj = self.store.put(dbucket, dname, src["data"], meta,
                                     res.get("contentType") or src["content_type"])
                r = resource(dbucket, dname, obj, self.headers.get("Host"))
                if verb == "rewriteTo":
                    r = {"kind": "storage#rewriteResponse", "totalBytesRewritten": r["size"],
                         "objectSize": r["size"], "done": True, "resource": r}
                return self.send(200, json.dumps(r), content_type="application/json")
        name = urllib.parse.unquote("/".join(rest))
        obj = objs.get(name)
        if obj is None:
            return self.json_error(404, "No such object: %s/%s" % (bucket, name))
        if self.command == "PATCH":
            res = json.loads(payload or b"{}") or {}
            with self.store.lock:
                for k, v in (res.get("metadata") or {}).items():
                    if v is None:
                        obj["metadata"].pop(k, None)
                    else:
                        obj["metadata"][k] = v
                if res.get("contentType"):
                    obj["content_type"] = res["contentType"]
            return self.send(200, json.dumps(resource(bucket, name, obj, self.headers.get("Host"))),
                             content_type="application/json")
        if self.command == "DELETE":
            del objs[name]
            return self.send(204, content_type="application/json")
        if q.get("alt") == "media" or path[1] == "download":
            headers = {"x-goog-hash": "crc32c=%s,md5=%s" % (obj["crc32c"], obj["md5"]),
                "x-goog-generation": str(obj["generation"])}
            data, rng = obj["data"], self.headers.get("Range")
            if rng and rng.startswith("bytes=") and "," not in rng:
                first, _, last = rng[6:].partition("-")
                start = int(first) if first else max(0, len(data) - int(last))
                end = min(int(last), len(data) - 1) if first and last else len(data) - 1
                if start >= len(data):
                    return self.json_error(416, "Requested range not satisfiable")
                headers["Content-Range"] = "bytes %d-%d/%d" % (start, end, len(data))
                return self.send(206, data[start:end + 1], headers,
                                 content_type=obj["content_type"])
            return self.send(200, data, headers, content_type=obj["content_type"])
        return self.send(200, json.dumps(resource(bucket, name, obj, self.headers.get("Host"))), content_type="application/json")


def serve(port, buckets, keys, tokens=(), accounts=None):
    Handler.store = Store(buckets, keys, tokens, accounts)
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    return srv


def load_account(arg):
    from cryptography.hazmat.primitives import serialization
    email, pem = arg.split(":", 1)
    with open(pem, "rb") as f:
        return email, serialization.load_pem_public_key(f.read())


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("bucket")
    ap.add_argument("keys", nargs="*", help="HMAC keys, ID:SECRET")
    ap.add_argument("--token", action="append", default=[])
    ap.add_argument("--service-account", action="append", default=[])
    a = ap.parse_args()
    srv = serve(a.port, [a.bucket], dict(k.split(":", 1) for k in a.keys), a.token,
                dict(load_account(x) for x in a.service_account))
    print("listening on %d" % srv.server_address[1], flush=True)
    srv.serve_forever()
