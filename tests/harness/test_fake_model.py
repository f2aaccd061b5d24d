# SPDX-License-Identifier: Apache-2.0
"""The fake model server by itself: the other harness tests trust it to
speak both wire formats, record what it receives and misbehave on cue."""

import http.client
import json
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_model as fm  # noqa: E402


def post(srv, path, body, headers=None, timeout=10, raw=False):
    host, port = "127.0.0.1", srv.httpd.server_address[1]
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", path, body=data, headers=hdrs)
    resp = conn.getresponse()
    out = resp.read()
    conn.close()
    if raw:
        return resp, out
    return resp, json.loads(out) if out else None


class FakeModelTest(unittest.TestCase):
    def server(self, script):
        srv = fm.FakeModelServer(script).start()
        self.addCleanup(srv.stop)
        return srv

    def test_responses_scripted_and_recorded(self):
        r1 = fm.calls_response([("call_1", "exec_command", {"cmd": "ls"})], "resp_a", (7, 3))
        r2 = fm.text_response("Done.", "resp_b")
        srv = self.server([fm.reply_json(r1), fm.reply_json(r2)])
        self.assertTrue(srv.base_url.startswith("http://127.0.0.1:"))
        resp, body = post(srv, "/v1/responses", {"model": "m", "input": "hi"},
                          {"Authorization": "Bearer sk-test"})
        self.assertEqual(resp.status, 200)
        self.assertEqual(body["id"], "resp_a")
        fc = body["output"][0]
        self.assertEqual((fc["type"], fc["call_id"], fc["name"]), ("function_call", "call_1", "exec_command"))
        self.assertEqual(json.loads(fc["arguments"]), {"cmd": "ls"})
        self.assertEqual(body["usage"]["input_tokens"], 7)
        second = {"model": "m", "input": [
            {"role": "user", "content": "hi"},
            {"type": "function_call", "call_id": "call_1", "name": "exec_command", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "file1\n"}]}
        resp, body = post(srv, "/v1/responses", second)
        self.assertEqual(body["output"][0]["content"][0]["text"], "Done.")
        reqs = srv.model_requests()
        self.assertEqual(len(reqs), 2)
        self.assertEqual(reqs[0].headers["authorization"], "Bearer sk-test")
        self.assertEqual(reqs[0].json["input"], "hi")
        self.assertEqual(reqs[1].tool_outputs(), {"call_1": "file1\n"})
        self.assertEqual(reqs[1].function_calls(), [("call_1", "exec_command", "{}")])
        # Past the end of the script: a 500 the test can see.
        resp, body = post(srv, "/v1/responses", {"model": "m", "input": "again"})
        self.assertEqual(resp.status, 500)
        self.assertEqual(srv.exhausted, 1)

    def test_chat_translation(self):
        r1 = fm.calls_response([("call_9", "exec_command", {"cmd": "id"})], "resp_c", (4, 2))
        srv = self.server([fm.reply_json(r1), fm.reply_json(fm.text_response("ok"))])
        resp, body = post(srv, "/v1/chat/completions", {"model": "m", "messages": [
            {"role": "system", "content": "sys"}, {"role": "user", "content": "go"}]})
        self.assertEqual(body["object"], "chat.completion")
        choice = body["choices"][0]
        self.assertEqual(choice["finish_reason"], "tool_calls")
        tc = choice["message"]["tool_calls"][0]
        self.assertEqual((tc["id"], tc["type"], tc["function"]["name"]), ("call_9", "function", "exec_command"))
        self.assertEqual(body["usage"], {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6})
        resp, body = post(srv, "/v1/chat/completions", {"model": "m", "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": None, "tool_calls": [tc]},
            {"role": "tool", "tool_call_id": "call_9", "content": "uid=0"}]})
        self.assertEqual(body["choices"][0]["message"]["content"], "ok")
        self.assertEqual(body["choices"][0]["finish_reason"], "stop")
        req = srv.model_requests()[1]
        self.assertEqual(req.api, "chat")
        self.assertEqual(req.tool_outputs(), {"call_9": "uid=0"})
        self.assertEqual(req.function_calls()[0][:2], ("call_9", "exec_command"))

    def test_errors_and_retry_after(self):
        srv = self.server([fm.reply_error(429, retry_after=3), fm.reply_error(503, retry_after=1),
                           fm.reply_raw("this is not json {"), fm.reply_json(fm.text_response("x"))])
        resp, body = post(srv, "/v1/responses", {})
        self.assertEqual(resp.status, 429)
        self.assertEqual(resp.getheader("Retry-After"), "3")
        self.assertIn("message", body["error"])
        resp, body = post(srv, "/v1/responses", {})
        self.assertEqual((resp.status, resp.getheader("Retry-After")), (503, "1"))
        resp, data = post(srv, "/v1/responses", {}, raw=True)
        self.assertEqual(resp.status, 200)
        self.assertRaises(ValueError, json.loads, data)
        resp, body = post(srv, "/v1/responses", {})
        self.assertEqual(resp.status, 200)

    def test_unknown_path_is_404(self):
        srv = self.server([fm.reply_json(fm.text_response("x"))])
        resp, body = post(srv, "/v1/completions", {})
        self.assertEqual(resp.status, 404)
        self.assertEqual(srv.served, 0)

    def test_slow_reply(self):
        srv = self.server([fm.Reply("json", fm.text_response("slow"), delay=1.0)])
        t = time.monotonic()
        resp, body = post(srv, "/v1/responses", {})
        self.assertGreaterEqual(time.monotonic() - t, 0.95)
        self.assertEqual(body["output"][0]["content"][0]["text"], "slow")

    def test_endless_stream_never_ends(self):
        srv = self.server([fm.reply_endless(interval=0.05)])
        sock = socket.create_connection(("127.0.0.1", srv.httpd.server_address[1]), timeout=5)
        self.addCleanup(sock.close)
        sock.sendall(b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        got = b""
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            got += sock.recv(65536)
        self.assertIn(b"200", got.split(b"\r\n")[0])
        self.assertNotIn(b"\r\n0\r\n\r\n", got)        # no terminating chunk
        self.assertGreater(srv.endless_bytes, 10)        # still trickling
        sock.close()
        end = time.monotonic() + 5
        while srv.endless_closed == 0 and time.monotonic() < end:
            time.sleep(0.05)
        self.assertEqual(srv.endless_closed, 1, "the endless reply did not notice the client leaving")

    def test_big_reply(self):
        big = "x" * (10 << 20)
        srv = self.server([fm.reply_json(fm.text_response(big))])
        resp, body = post(srv, "/v1/responses", {}, timeout=60)
        self.assertEqual(len(body["output"][0]["content"][0]["text"]), 10 << 20)

    def test_streaming_shapes(self):
        r = fm.calls_response([("c1", "exec_command", {"cmd": "ls"})], "resp_s")
        srv = self.server([fm.reply_json(r), fm.reply_json(r)])
        resp, data = post(srv, "/v1/responses", {"stream": True}, raw=True)
        self.assertEqual(resp.getheader("Content-Type"), "text/event-stream")
        events = [json.loads(line[6:]) for line in data.decode().splitlines() if line.startswith("data: ")]
        self.assertEqual(events[-1]["type"], "response.completed")
        self.assertEqual(events[-1]["response"]["output"][0]["call_id"], "c1")
        resp, data = post(srv, "/v1/chat/completions", {"stream": True}, raw=True)
        lines = [line[6:] for line in data.decode().splitlines() if line.startswith("data: ")]
        self.assertEqual(lines[-1], "[DONE]")
        first = json.loads(lines[0])
        self.assertEqual(first["choices"][0]["delta"]["tool_calls"][0]["id"], "c1")

    def test_chunked_request_body(self):
        srv = self.server([fm.reply_json(fm.text_response("x"))])
        sock = socket.create_connection(("127.0.0.1", srv.httpd.server_address[1]), timeout=5)
        self.addCleanup(sock.close)
        sock.sendall(b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\n\r\n")
        data = b""
        while b"resp_" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        self.assertEqual(srv.model_requests()[0].json, {"a": 1})

    def test_conversation_follows_tool_results(self):
        t1 = fm.calls_response([("a1", "exec_command", {"cmd": "x"}), ("a2", "exec_command", {"cmd": "y"})], "r1")
        t2 = fm.calls_response([("b1", "exec_command", {"cmd": "z"})], "r2")
        t3 = fm.text_response("end", "r3")
        srv = self.server(fm.Conversation([t1, t2, t3]))

        def ask(outputs):
            items = [{"role": "user", "content": "go"}]
            items += [{"type": "function_call_output", "call_id": c, "output": "o"} for c in outputs]
            return post(srv, "/v1/responses", {"input": items})[1]["id"]

        self.assertEqual(ask([]), "r1")
        self.assertEqual(ask([]), "r1")              # a resend gets the same turn
        self.assertEqual(ask(["a1"]), "r1")          # not all of turn 1's results yet
        self.assertEqual(ask(["a1", "a2"]), "r2")
        self.assertEqual(ask(["a1", "a2", "b1"]), "r3")
        resp, body = post(srv, "/v1/responses", {"previous_response_id": "r2", "input": []})
        self.assertEqual(body["id"], "r3")
        resp, body = post(srv, "/v1/chat/completions", {"messages": [
            {"role": "tool", "tool_call_id": "a1", "content": "o"},
            {"role": "tool", "tool_call_id": "a2", "content": "o"}]})
        self.assertEqual(body["id"], "r2")


if __name__ == "__main__":
    unittest.main(verbosity=2)
