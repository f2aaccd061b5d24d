/* SPDX-License-Identifier: Apache-2.0 */
/* A sandbox's network settings: allowlist entries and published ports
 * parsed, refused, written back canonically; kept through the spec's record
 * and a restore request. */
#include "test.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "json.h"
#include "netspec.h"
#include "spec.h"

static int parse(const char *network, const char *ports, struct netspec *n, struct al_error *err)
{
	_cleanup_cjson_ cJSON *nw = network ? cJSON_Parse(network) : NULL;
	_cleanup_cjson_ cJSON *p = ports ? cJSON_Parse(ports) : NULL;

	al_error_clear(err);
	return netspec_parse(nw, p, n, err);
}

static char *printed(cJSON *v)
{
	char *s = cJSON_PrintUnformatted(v);
	cJSON_Delete(v);
	return s;
}

TEST(none)
{
	struct al_error err = AL_ERROR_INIT;
	struct netspec n;
	_cleanup_free_ char *s = NULL;

	CHECK_INT(parse(NULL, NULL, &n, &err), 0);
	CHECK(!n.allowlist && n.n_ports == 0);
	CHECK_INT(parse("\"none\"", "null", &n, &err), 0);
	CHECK_INT(parse("\"loopback\"", "[]", &n, &err), 0);
	CHECK(!n.allowlist);
	s = printed(netspec_network_json(&n));
	CHECK_STR(s, "\"none\"");
}

TEST(allowlist_canonical_round_trip)
{
	struct al_error err = AL_ERROR_INIT;
	struct netspec n, again;
	_cleanup_free_ char *nw = NULL, *ports = NULL, *nw2 = NULL;

	CHECK_INT(
	    parse(
	        "{\"allow\": [\"10.1.2.3\", \"10.2.0.0/16:80,443\", \"192.168.0.0/24:8000-8100,9\","
	        " \"0.0.0.0/0:53\"]}",
	        "[\"8080:80\", \"0.0.0.0:9000:9001\"]", &n, &err),
	    0);
	CHECK(n.allowlist);
	CHECK_INT(n.n_allow, 4);
	CHECK_INT(n.allow[0].addr, 0x0a010203);
	CHECK_INT(n.allow[0].prefix, 32);
	CHECK_INT(n.allow[0].n_ranges, 0);
	CHECK_INT(n.allow[1].n_ranges, 2);
	CHECK_INT(n.allow[2].ranges[0].lo, 8000);
	CHECK_INT(n.allow[2].ranges[0].hi, 8100);
	CHECK_INT(n.allow[3].prefix, 0);
	CHECK_INT(n.n_ports, 2);
	CHECK_INT(n.ports[0].host_addr, 0x7f000001);
	CHECK_INT(n.ports[0].host_port, 8080);
	CHECK_INT(n.ports[0].port, 80);
	CHECK_INT(n.ports[1].host_addr, 0);
	nw = printed(netspec_network_json(&n));
	ports = printed(netspec_ports_json(&n));
	CHECK_STR(nw, "{\"allow\":[\"10.1.2.3/32\",\"10.2.0.0/16:80,443\","
	              "\"192.168.0.0/24:8000-8100,9\",\"0.0.0.0/0:53\"]}");
	CHECK_STR(ports, "[\"127.0.0.1:8080:80\",\"0.0.0.0:9000:9001\"]");
	/* What is written reads back the same. */
	CHECK_INT(parse(nw, ports, &again, &err), 0);
	nw2 = printed(netspec_network_json(&again));
	CHECK_STR(nw2, nw);
	CHECK(memcmp(&n, &again, sizeof(n)) == 0);
	/* Host names, lowered, with or without ports. */
	CHECK_INT(parse("{\"allow\": [\"Mirror.Corp.example:443\", \"pypi\", \"1st.example\"]}",
	                NULL, &n, &err),
	          0);
	CHECK_STR(n.allow[0].name, "mirror.corp.example");
	CHECK_INT(n.allow[0].n_ranges, 1);
	CHECK_STR(n.allow[1].name, "pypi");
	CHECK(netspec_has_names(&n));
	free(nw);
	nw = printed(netspec_network_json(&n));
	CHECK_STR(nw, "{\"allow\":[\"mirror.corp.example:443\",\"pypi\",\"1st.example\"]}");
	/* UDP: "/udp" kept, "/tcp" is the default and dropped; one host port for both. */
	CHECK_INT(parse(NULL, "[\"5353:53/udp\", \"5353:53/tcp\", \"1.2.3.4:0:9/udp\"]", &n, &err),
	          0);
	CHECK(n.ports[0].udp && !n.ports[1].udp && n.ports[2].udp);
	CHECK_INT(n.ports[0].port, 53);
	CHECK_INT(n.ports[2].host_addr, 0x01020304);
	free(ports);
	ports = printed(netspec_ports_json(&n));
	CHECK_STR(ports, "[\"127.0.0.1:5353:53/udp\",\"127.0.0.1:5353:53\",\"1.2.3.4:0:9/udp\"]");
	CHECK_INT(parse(NULL, ports, &again, &err), 0);
	CHECK(again.n_ports == 3 && again.ports[0].udp && !again.ports[1].udp &&
	      again.ports[2].udp);
	/* Host port 0: any free one, so it may come twice. */
	CHECK_INT(parse(NULL, "[\"0:80\", \"0:81\"]", &n, &err), 0);
	CHECK_INT(n.ports[1].host_port, 0);
	/* An empty allowlist is one: a link that lets nothing out. */
	CHECK_INT(parse("{\"allow\": []}", NULL, &n, &err), 0);
	CHECK(n.allowlist && n.n_allow == 0);
}

TEST(refused)
{
	static const char *const networks[] = {
	    "\"bridge\"",
	    "\"host\"",
	    "42",
	    "[]",
	    "{}",
	    "{\"deny\": []}",
	    "{\"allow\": [\"10.0.0.0/8\"], \"x\": 1}",
	    "{\"allow\": \"10.0.0.0/8\"}",
	    "{\"allow\": [1]}",
	    "{\"allow\": [\"10.1.2.3/8\"]}", /* host bits */
	    "{\"allow\": [\"10.1.2.0/33\"]}",
	    "{\"allow\": [\"10.1.2\"]}",
	    "{\"allow\": [\"010.1.2.3\"]}",
	    "{\"allow\": [\"exa_mple.com\"]}",
	    "{\"allow\": [\"-a.com\"]}",
	    "{\"allow\": [\"a-.com\"]}",
	    "{\"allow\": [\"a..com\"]}",
	    "{\"allow\": [\".a.com\"]}",
	    "{\"allow\": [\"a.com.\"]}",
	    "{\"allow\": [\"1.2.3.4.5\"]}",
	    "{\"allow\": [\"::1\"]}",
	    "{\"allow\": [\"10.0.0.1:\"]}",
	    "{\"allow\": [\"10.0.0.1:0\"]}",
	    "{\"allow\": [\"10.0.0.1:65536\"]}",
	    "{\"allow\": [\"10.0.0.1:80,\"]}",
	    "{\"allow\": [\"10.0.0.1:90-80\"]}",
	    "{\"allow\": [\"10.0.0.1:-80\"]}",
	    "{\"allow\": [\"10.0.0.1:8a\"]}",
	    "{\"allow\": [\"10.0.0.1/\"]}",
	    "{\"allow\": [\"10.0.0.1:1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17\"]}",
	};
	static const char *const ports[] = {
	    "\"8080:80\"",
	    "{}",
	    "[80]",
	    "[\"80\"]",
	    "[\"80:0\"]",
	    "[\"a:80\"]",
	    "[\"1.2.3:80:80\"]",
	    "[\"1:2:3:4\"]",
	    "[\":80\"]",
	    "[\"80:\"]",
	    "[\"8080:80\", \"127.0.0.1:8080:81\"]",
	    "[\"8080:80/sctp\"]",
	    "[\"8080:80/\"]",
	    "[\"8080:80/udp/udp\"]",
	    "[\"8080/udp:80\"]",
	    "[\"8080:80/udp\", \"8080:81/udp\"]",
	};
	struct al_error err = AL_ERROR_INIT;
	struct netspec n;

	for (size_t i = 0; i < sizeof(networks) / sizeof(networks[0]); i++) {
		int r = parse(networks[i], NULL, &n, &err);
		if (r != -EINVAL)
			fprintf(stderr, "network %s: %d\n", networks[i], r);
		CHECK_INT(r, -EINVAL);
	}
	for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
		int r = parse(NULL, ports[i], &n, &err);
		if (r != -EINVAL)
			fprintf(stderr, "ports %s: %d\n", ports[i], r);
		CHECK_INT(r, -EINVAL);
	}
	/* Too many entries. */
	{
		_cleanup_cjson_ cJSON *nw = cJSON_CreateObject();
		cJSON *allow = cJSON_AddArrayToObject(nw, "allow");
		for (int i = 0; i <= NETSPEC_MAX_ALLOW; i++)
			cJSON_AddItemToArray(allow, cJSON_CreateString("10.0.0.1"));
		CHECK_INT(netspec_parse(nw, NULL, &n, &err), -EINVAL);
	}
}

TEST(record_and_restore_request)
{
	char dir[] = "/tmp/airlock-netspec-XXXXXX";
	struct al_error err = AL_ERROR_INIT;
	struct sandbox_spec s = {0}, back = {0};
	_cleanup_cjson_ cJSON *req = NULL, *rec = NULL, *restore = NULL, *rreq = NULL;
	struct sandbox_spec_policy pol = {.trusted = false};
	const cJSON *v;

	if (!mkdtemp(dir)) {
		CHECK(0);
		return;
	}
	pol.default_rootfs = dir;
	req = cJSON_Parse(
	    "{\"network\": {\"allow\": [\"10.9.0.0/16:443\"]}, \"ports\": [\"8080:80\"]}");
	CHECK_INT(sandbox_spec_from_request(req, &pol, &s, &err), 0);
	CHECK(s.net.allowlist && s.net.n_ports == 1);
	rec = sandbox_spec_to_json(&s);
	CHECK_INT(sandbox_spec_from_record(rec, &back, &err), 0);
	CHECK(memcmp(&s.net, &back.net, sizeof(s.net)) == 0);
	/* A restore keeps the network, not the ports (the original may hold
	 * them): it gives its own. */
	rreq = cJSON_Parse("{\"ports\": [\"9090:80\"]}");
	restore = sandbox_spec_restore_request(rec, rreq);
	v = cJSON_GetObjectItemCaseSensitive(restore, "network");
	CHECK(cJSON_IsObject(v));
	v = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(restore, "ports"), 0);
	CHECK(cJSON_IsString(v) && !strcmp(v->valuestring, "9090:80"));
	cJSON_AddStringToObject(rreq, "snapshot", "s1");
	CHECK_INT(sandbox_spec_check_request(rreq, &err), 0);
	/* Its network is the snapshot's: a restore cannot widen it. */
	cJSON_AddStringToObject(rreq, "network", "none");
	CHECK_INT(sandbox_spec_check_request(rreq, &err), -EINVAL);
	sandbox_spec_free(&back);
	sandbox_spec_free(&s);
	/* Privileged host ports are for root clients. */
	cJSON_Delete(req);
	req = cJSON_Parse("{\"ports\": [\"443:80\"]}");
	CHECK_INT(sandbox_spec_from_request(req, &pol, &s, &err), -EPERM);
	sandbox_spec_free(&s);
	pol.trusted = true;
	CHECK_INT(sandbox_spec_from_request(req, &pol, &s, &err), 0);
	/* Neither is a warm-pool sandbox. */
	{
		struct sandbox_spec plain = {0};
		CHECK_INT(sandbox_spec_from_request(NULL, &pol, &plain, &err), 0);
		CHECK(sandbox_spec_poolable(&plain, &plain));
		CHECK(!sandbox_spec_poolable(&s, &plain));
		sandbox_spec_free(&plain);
	}
	sandbox_spec_free(&s);
	rmdir(dir);
}

int main(void)
{
	RUN(none);
	RUN(allowlist_canonical_round_trip);
	RUN(refused);
	RUN(record_and_restore_request);
	return test_main_result();
}
