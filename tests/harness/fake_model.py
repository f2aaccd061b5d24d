# SPDX-License-Identifier: Apache-2.0
"""A fake OpenAI-style model server on loopback, scripted per test.

It answers `POST /v1/responses` (Responses API) and
`POST /v1/chat/completions` (Chat Completions) with what the test scripted,
and records every request it receives (method, path, headers, body, arrival
time) so a test can assert on what the harness sent.

A script is either a list of replies, served in the order requests arrive,
or a callable `reply_for(request) -> Reply` that picks the reply from what
the request carries (see `Conversation`, which survives a client resending a
request after a crash).  Replies can be slow, fail with 429/503 and
Retry-After, carry a body that is not JSON, or never end.

Non-streaming by default; when a request asks for `"stream": true` the
reply is sent as server-sent events in the API's streaming shape.
"""

import http.server
import json
import socket
import threading
import time

RESPONSES_PATH = "/v1/responses"
CHAT_PATH = "/v1/chat/completions"


# ---- what the server sends back ----

class Reply:
    """One scripted answer.

    kind: "json" (body is an object in Responses shape, translated for the
    chat path), "raw" (body sent as is), "error" (status with an OpenAI-style
    error object) or "endless" (a 200 whose body never ends).
    """

    def __init__(self, kind, body=None, status=200, headers=None, delay=0.0,
                 interval=0.1):
        self.kind = kind
        self.body = body
        self.status = status
        self.headers = dict(headers or {})
        self.delay = delay
        self.interval = interval

    def __repr__(self):
        return "<Reply %s %d>" % (self.kind, self.status)


def reply_json(response, delay=0.0):
    """A successful model response, given in Responses API shape."""
    return Reply("json", response, delay=delay)


def reply_error(status, retry_after=None, message=None, delay=0.0):
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    body = {"error": {"message": message or "fake server error %d" % status,
                      "type": "rate_limit_error" if status == 429 else "server_error",
                      "param": None, "code": None}}
    return Reply("error", body, status=status, headers=headers, delay=delay)


def reply_raw(data, status=200, content_type="application/json", delay=0.0):
    if isinstance(data, str):
        data = data.encode()
    return Reply("raw", data, status=status, headers={"Content-Type": content_type},
                 delay=delay)


def reply_endless(interval=0.1):
    """200 with a body that starts like a response and then trickles
    whitespace forever: only a total timeout ends it."""
    return Reply("endless", interval=interval)


# ---- model responses in Responses API shape ----

_ids = iter(range(1, 1 << 30))


def function_call(call_id, name, arguments):
    """arguments: a dict (encoded to JSON) or a str sent verbatim."""
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return {"type": "function_call", "id": "fc_%s" % call_id, "call_id": call_id,
            "name": name, "arguments": arguments, "status": "completed"}


def message(text):
    return {"type": "message", "id": "msg_%d" % next(_ids), "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def response(output, resp_id=None, usage=(10, 5)):
    resp_id = resp_id or "resp_%d" % next(_ids)
    body = {"id": resp_id, "object": "response", "created_at": int(time.time()),
            "status": "completed", "model": "fake-model", "output": list(output)}
    if usage is not None:
        body["usage"] = {"input_tokens": usage[0], "output_tokens": usage[1],
                         "total_tokens": usage[0] + usage[1],
                         "input_tokens_details": {"cached_tokens": 0},
                         "output_tokens_details": {"reasoning_tokens": 0}}
    return body


def calls_response(calls, resp_id=None, usage=(10, 5)):
    """calls: [(call_id, name, arguments)]."""
    return response([function_call(*c) for c in calls], resp_id, usage)


def text_response(text, resp_id=None, usage=(10, 5)):
    return response([message(text)], resp_id, usage)


def to_chat(resp):
    """The same model turn as a Chat Completions response."""
    calls, texts = [], []
    for item in resp.get("output", []):
        if item.get("type") == "function_call":
            calls.append({"id": item["call_id"], "type": "function",
                          "function": {"name": item["name"], "arguments": item["arguments"]}})
        elif item.get("type") == "message":
            texts += [c.get("text", "") for c in item.get("content", [])]
    msg = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        msg["tool_calls"] = calls
    body = {"id": resp["id"].replace("resp_", "chatcmpl-"), "object": "chat.completion",
            "created": resp.get("created_at", int(time.time())), "model": "fake-model",
            "choices": [{"index": 0, "message": msg, "logprobs": None,
                         "finish_reason": "tool_calls" if calls else "stop"}]}
    usage = resp.get("usage")
    if usage:
        body["usage"] = {"prompt_tokens": usage["input_tokens"],
                         "completion_tokens": usage["output_tokens"],
                         "total_tokens": usage["input_tokens"] + usage["output_tokens"]}
    return body


def _sse_responses(resp):
    """Responses API streaming events for a complete response."""
    events = [("response.created", {"type": "response.created",
                                    "response": dict(resp, status="in_progress", output=[])})]
    for i, item in enumerate(resp.get("output", [])):
        events.append(("response.output_item.added",
                       {"type": "response.output_item.added", "output_index": i, "item": item}))
        events.append(("response.output_item.done",
                       {"type": "response.output_item.done", "output_index": i, "item": item}))
    events.append(("response.completed", {"type": "response.completed", "response": resp}))
    out = b""
    for seq, (name, data) in enumerate(events):
        data = dict(data, sequence_number=seq)
        out += b"event: " + name.encode() + b"\ndata: " + json.dumps(data).encode() + b"\n\n"
    return out


def _sse_chat(chat):
    choice = chat["choices"][0]
    msg = choice["message"]
    delta = {"role": "assistant", "content": msg.get("content")}
    if msg.get("tool_calls"):
        delta["tool_calls"] = [dict(tc, index=i) for i, tc in enumerate(msg["tool_calls"])]
    base = {"id": chat["id"], "object": "chat.completion.chunk", "created": chat["created"],
            "model": chat["model"]}
    chunks = [dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": None}]),
              dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}])]
    if chat.get("usage"):
        chunks.append(dict(base, choices=[], usage=chat["usage"]))
    out = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    return out + b"data: [DONE]\n\n"


# ---- what the server received ----

class Request:
    def __init__(self, method, path, headers, body, arrived):
        self.method = method
        self.path = path
        self.header_list = headers          # [(name, value)] as received
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        self.arrived = arrived              # time.monotonic()
        try:
            self.json = json.loads(body.decode()) if body else None
        except (UnicodeDecodeError, ValueError):
            self.json = None

    @property
    def api(self):
        if self.path.rstrip("/").endswith("/responses"):
            return "responses"
        if self.path.rstrip("/").endswith("/chat/completions"):
            return "chat"
        return None

    def tool_outputs(self):
        """{call_id: output} of every tool result this request carries."""
        out = {}
        for call_id, text in self.tool_output_list():
            out[call_id] = text
        return out

    def tool_output_list(self):
        """[(call_id, output)] in order, duplicates kept."""
        body = self.json or {}
        found = []
        if self.api == "responses":
            items = body.get("input")
            if isinstance(items, list):
                for it in items:
                    if isinstance(it, dict) and it.get("type") == "function_call_output":
                        found.append((it.get("call_id"), _text_of(it.get("output"))))
        elif self.api == "chat":
            for m in body.get("messages") or []:
                if isinstance(m, dict) and m.get("role") == "tool":
                    found.append((m.get("tool_call_id"), _text_of(m.get("content"))))
        return found

    def function_calls(self):
        """[(call_id, name, arguments)] of the model's calls echoed back in
        the conversation, in order, duplicates kept."""
        body = self.json or {}
        found = []
        if self.api == "responses":
            items = body.get("input")
            if isinstance(items, list):
                for it in items:
                    if isinstance(it, dict) and it.get("type") == "function_call":
                        found.append((it.get("call_id"), it.get("name"), it.get("arguments")))
        elif self.api == "chat":
            for m in body.get("messages") or []:
                if isinstance(m, dict) and m.get("role") == "assistant":
                    for tc in m.get("tool_calls") or []:
                        fn = tc.get("function") or {}
                        found.append((tc.get("id"), fn.get("name"), fn.get("arguments")))
        return found

    def tool_names(self):
        names = []
        for t in (self.json or {}).get("tools") or []:
            if not isinstance(t, dict):
                continue
            if "function" in t and isinstance(t["function"], dict):
                names.append(t["function"].get("name"))
            else:
                names.append(t.get("name"))
        return names

    def tool_schema(self, name):
        for t in (self.json or {}).get("tools") or []:
            if not isinstance(t, dict):
                continue
            fn = t["function"] if isinstance(t.get("function"), dict) else t
            if fn.get("name") == name:
                return fn.get("parameters")
        return None

    def __repr__(self):
        return "<%s %s %d bytes>" % (self.method, self.path, len(self.body))


def _text_of(value):
    """A tool output as text: a string, or the text parts of a content list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(p.get("text", "") for p in value if isinstance(p, dict))
    return json.dumps(value)


# ---- a script that follows the conversation ----

class Conversation:
    """Serves turn j+1 once the request carries the results of every call of
    turns 0..j, so a harness that resends a request after being killed gets
    the same answer again.  turns: Responses-shape response objects."""

    def __init__(self, turns, api="responses"):
        self.turns = turns
        self.api = api

    def _calls(self, j):
        return [it["call_id"] for it in self.turns[j].get("output", [])
                if it.get("type") == "function_call"]

    def __call__(self, req):
        body = req.json or {}
        prev = body.get("previous_response_id")
        if prev:
            # Only new items travel with previous_response_id: the response
            # it names fixes the turn.
            for j, t in enumerate(self.turns):
                if t["id"] == prev:
                    if j + 1 < len(self.turns):
                        return reply_json(self.turns[j + 1])
            return reply_error(400, message="unknown previous_response_id %r" % prev)
        have = {cid for cid, _ in req.tool_output_list()}
        j = 0
        while j < len(self.turns) - 1 and all(c in have for c in self._calls(j)) and self._calls(j):
            j += 1
        return reply_json(self.turns[j])


# ---- the server ----

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-openai/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        self._answer(self.server.fake.handle(self, b""))

    def do_POST(self):
        body = self._read_body()
        self._answer(self.server.fake.handle(self, body))

    def _send(self, status, body, content_type="application/json", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _answer(self, plan):
        req, reply = plan
        fake = self.server.fake
        if reply.delay:
            fake.stopping.wait(reply.delay)
        try:
            if reply.kind == "endless":
                self._endless(reply)
                return
            if reply.kind == "raw":
                self._send(reply.status, reply.body,
                           reply.headers.get("Content-Type", "application/json"))
                return
            if reply.kind == "error":
                self._send(reply.status, json.dumps(reply.body).encode(),
                           headers={k: v for k, v in reply.headers.items()})
                return
            body = reply.body
            if req.api == "chat":
                body = to_chat(body)
            if (req.json or {}).get("stream") is True:
                data = _sse_responses(body) if req.api == "responses" else _sse_chat(body)
                self._send(200, data, "text/event-stream")
            else:
                self._send(200, json.dumps(body).encode())
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True

    def _endless(self, reply):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        fake = self.server.fake

        def chunk(data):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        try:
            chunk(b'{"id": "resp_endless", "object": "response", "output": [')
            while not fake.stopping.wait(reply.interval):
                chunk(b" ")
                fake.endless_bytes += 1
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            pass
        fake.endless_closed += 1


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeModelServer:
    """A scripted model server on 127.0.0.1 with an ephemeral port.

        with FakeModelServer([reply_json(calls_response(...)), ...]) as srv:
            task["model"]["base_url"] = srv.base_url
            ...
            srv.requests[1].tool_outputs()
    """

    def __init__(self, script=None):
        self.lock = threading.Lock()
        self.requests = []
        self.stopping = threading.Event()
        self.endless_bytes = 0
        self.endless_closed = 0
        self.exhausted = 0
        self.set_script(script or [])
        self.httpd = None
        self.thread = None

    def set_script(self, script):
        with self.lock:
            self.script = script if callable(script) else list(script)
            self.served = 0

    def reset(self, script=None):
        with self.lock:
            self.requests = []
        self.set_script(script if script is not None else [])

    @property
    def base_url(self):
        return "http://127.0.0.1:%d/v1" % self.httpd.server_address[1]

    def start(self):
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.fake = self
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        if self.thread:
            self.thread.join(10)
            self.thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def handle(self, handler, body):
        req = Request(handler.command, handler.path, list(handler.headers.items()), body,
                      time.monotonic())
        with self.lock:
            self.requests.append(req)
            if req.api is None:
                return req, reply_error(404, message="no route %s" % req.path)
            if callable(self.script):
                reply = self.script(req)
            elif self.served < len(self.script):
                reply = self.script[self.served]
                if callable(reply):
                    reply = reply(req)
            else:
                self.exhausted += 1
                reply = reply_error(500, message="fake server: script exhausted after %d replies"
                                    % len(self.script))
            self.served += 1
        return req, reply

    def model_requests(self):
        with self.lock:
            return [r for r in self.requests if r.api is not None]
