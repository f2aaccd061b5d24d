/* SPDX-License-Identifier: Apache-2.0 */
/*
 * airlock-gateway: hosted sandbox services' own wire APIs (E2B, Daytona, the Cloudflare bridge)
 * served on top of airlockd, so that code written for their SDKs runs on-prem by changing a URL
 * (docs/gateway.md).  It is a client of airlockd's Unix socket like the harness, and holds
 * no secret but its keys file.
 */
#include "server.h"

#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define DEFAULT_SOCKET "/run/airlock/airlockd.sock"
#define DEFAULT_LISTEN "127.0.0.1:8049"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: airlock-gateway --keys FILE [--socket AIRLOCKD_SOCKET] "
	        "[--listen ADDR:PORT] [--rootfs DIR]\n"
	        "  --keys FILE      JSON object mapping API keys to tenant names (mode 0600)\n"
	        "  --socket PATH    airlockd's socket (default %s, or $AIRLOCK_SOCKET)\n"
	        "  --listen A:P     where to serve (default %s; port 0 picks one)\n"
	        "  --rootfs DIR     base rootfs of new sandboxes (default airlockd's)\n"
	        "  --version        print the version and exit\n",
	        DEFAULT_SOCKET, DEFAULT_LISTEN);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"keys", required_argument, NULL, 'k'},
	                                     {"socket", required_argument, NULL, 's'},
	                                     {"listen", required_argument, NULL, 'l'},
	                                     {"rootfs", required_argument, NULL, 'r'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {"version", no_argument, NULL, 'V'},
	                                     {NULL, 0, NULL, 0}};
	struct gw_server s = {0};
	struct al_error err = AL_ERROR_INIT;
	const char *keys = NULL, *listen_addr = DEFAULT_LISTEN;
	sigset_t set;
	unsigned port = 0;
	int c, sig;

	al_log_set_ident("airlock-gateway");
	s.backend.socket = getenv("AIRLOCK_SOCKET") ? getenv("AIRLOCK_SOCKET") : DEFAULT_SOCKET;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			keys = optarg;
			break;
		case 's':
			s.backend.socket = optarg;
			break;
		case 'l':
			listen_addr = optarg;
			break;
		case 'r':
			s.rootfs = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("airlock-gateway %s\n", AIRLOCK_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || !keys) {
		fprintf(stderr, "airlock-gateway: %s\n",
		        keys ? "unexpected arguments" : "--keys FILE is required");
		usage(stderr);
		return 2;
	}
	if (gw_keys_load(keys, &s.keys, &err) < 0) {
		fprintf(stderr, "airlock-gateway: %s\n", err.msg);
		return 1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "airlock-gateway: cannot initialise libcurl\n");
		return 1;
	}
	/* Signals are taken synchronously below; no thread may get them first. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	gw_e2b_init(&s);
	if (gw_server_start(&s, listen_addr, &port, &err) < 0) {
		fprintf(stderr, "airlock-gateway: %s\n", err.msg);
		gw_e2b_shutdown();
		gw_daytona_shutdown();
		gw_cloudflare_shutdown();
		gw_blaxel_shutdown();
		gw_keys_free(&s.keys);
		return 1;
	}
	/* The line a supervisor (or a test) waits for. */
	printf("airlock-gateway: listening on %.*s:%u\n",
	       (int)(strrchr(listen_addr, ':') - listen_addr), listen_addr, port);
	fflush(stdout);
	while (sigwait(&set, &sig) == 0 && sig != SIGINT && sig != SIGTERM)
		;
	log_info("stopping on signal %d", sig);
	gw_e2b_shutdown();
	gw_daytona_shutdown();
	gw_cloudflare_shutdown();
	gw_blaxel_shutdown();
	gw_server_stop(&s);
	gw_keys_free(&s.keys);
	curl_global_cleanup();
	return 0;
}
