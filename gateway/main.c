/* SPDX-License-Identifier: Apache-2.0 */
/*
 * airlock-gateway: hosted sandbox services' own wire APIs (E2B, Daytona, the Cloudflare bridge,
 * Blaxel, Runloop, Vercel)
 * served on top of airlockd, so that code written for their SDKs runs on-prem by changing a URL
 * (docs/gateway.md).  It is a client of airlockd's Unix socket like the harness, and holds
 * no secret but its keys file and (with --state-dir) its registries; it confines itself
 * once it has opened what it needs (confine.h).
 */
#include "confine.h"
#include "grpc.h"
#include "server.h"

#include "cleanup.h"
#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#define DEFAULT_SOCKET "/run/airlock/airlockd.sock"
#define DEFAULT_LISTEN "127.0.0.1:8049"

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: airlock-gateway --keys FILE [--socket AIRLOCKD_SOCKET] "
	    "[--listen ADDR:PORT] [--rootfs DIR | --image NAME] [--state-dir DIR] [--user USER]\n"
	    "  --keys FILE      JSON object mapping API keys to tenant names (mode 0600)\n"
	    "  --socket PATH    airlockd's socket (default %s, or $AIRLOCK_SOCKET)\n"
	    "  --listen A:P     where to serve (default %s; port 0 picks one)\n"
	    "  --rootfs DIR     base rootfs of new sandboxes (default airlockd's)\n"
	    "  --image NAME     or an image imported into airlockd (docs/images.md)\n"
	    "  --state-dir DIR  keep the sandbox registries there: a restarted gateway\n"
	    "                   serves the same sandboxes, and stopping deletes nothing\n"
	    "  --user USER      the user to run as when started as root (default nobody)\n"
	    "  --version        print the version and exit\n",
	    DEFAULT_SOCKET, DEFAULT_LISTEN);
}

static void shutdown_services(void)
{
	gw_e2b_shutdown();
	gw_daytona_shutdown();
	gw_cloudflare_shutdown();
	gw_blaxel_shutdown();
	gw_runloop_shutdown();
	gw_vercel_shutdown();
	gw_modal_shutdown();
}

/* Read each service's saved registry (as the user the gateway starts as). */
static int init_services(struct gw_server *s, struct al_error *err)
{
	int r = gw_e2b_init(s, err);

	if (r == 0)
		r = gw_daytona_init(s, err);
	if (r == 0)
		r = gw_cloudflare_init(s, err);
	if (r == 0)
		r = gw_blaxel_init(s, err);
	if (r == 0)
		r = gw_runloop_init(s, err);
	if (r == 0)
		r = gw_vercel_init(s, err);
	if (r == 0)
		r = gw_modal_init(s, err);
	return r;
}

/* Whether airlockd answers the confined gateway: a wrong socket group shows here. */
static void check_backend(const struct gw_server *s)
{
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	struct al_error e = AL_ERROR_INIT;

	if (gw_backend_call(&s->backend, "GET", "/v1/info", NULL, NULL, 0, 10000, &res, &e) < 0)
		log_warn("airlockd at %s does not answer: %s", s->backend.socket, e.msg);
	else if (res.status != 200)
		log_warn("airlockd at %s refuses the gateway: %s", s->backend.socket,
		         gw_result_message(&res));
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"keys", required_argument, NULL, 'k'},   {"socket", required_argument, NULL, 's'},
	    {"listen", required_argument, NULL, 'l'}, {"rootfs", required_argument, NULL, 'r'},
	    {"image", required_argument, NULL, 'i'},  {"state-dir", required_argument, NULL, 'd'},
	    {"user", required_argument, NULL, 'u'},   {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0}};
	struct gw_server s = {0};
	struct gw_confine conf = {0};
	struct al_error err = AL_ERROR_INIT;
	const char *keys = NULL, *listen_addr = DEFAULT_LISTEN, *state_dir = NULL;
	_cleanup_free_ char *socket_abs = NULL;
	sigset_t set;
	unsigned port = 0;
	int c, sig, listen_fd = -1;

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
		case 'i':
			s.image = optarg;
			break;
		case 'd':
			state_dir = optarg;
			break;
		case 'u':
			conf.user = optarg;
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
	if (s.rootfs && s.image) {
		fprintf(stderr, "airlock-gateway: give --rootfs or --image, not both\n");
		return 2;
	}
	if (optind != argc || !keys) {
		fprintf(stderr, "airlock-gateway: %s\n",
		        keys ? "unexpected arguments" : "--keys FILE is required");
		usage(stderr);
		return 2;
	}
	/* Absolute: the confined gateway's working directory is its own root. */
	if (s.backend.socket[0] != '/') {
		_cleanup_free_ char *cwd = getcwd(NULL, 0);
		if (!cwd || asprintf(&socket_abs, "%s/%s", cwd, s.backend.socket) < 0) {
			fprintf(stderr, "airlock-gateway: out of memory\n");
			return 1;
		}
		s.backend.socket = socket_abs;
	}
	conf.socket = s.backend.socket;
	conf.state_dir = state_dir;
	if (gw_keys_load(keys, &s.keys, &err) < 0 || gw_confine_prepare(&conf, &err) < 0 ||
	    (state_dir && gw_state_open(&s.state, state_dir, conf.uid, conf.gid, &err) < 0)) {
		fprintf(stderr, "airlock-gateway: %s\n", err.msg);
		gw_keys_free(&s.keys);
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
	/* Everything that needs the starting user's rights, then the confinement, then the
	 * threads (which inherit it). */
	if (init_services(&s, &err) < 0 ||
	    gw_server_listen(listen_addr, &listen_fd, &port, &err) < 0 ||
	    gw_confine_apply(&conf, &err) < 0) {
		fprintf(stderr, "airlock-gateway: %s\n", err.msg);
		shutdown_services();
		gw_keys_free(&s.keys);
		gw_state_close(&s.state);
		return 1;
	}
	check_backend(&s);
	gw_e2b_start();
	if (gw_server_start(&s, listen_fd, &err) < 0) {
		fprintf(stderr, "airlock-gateway: %s\n", err.msg);
		gw_state_freeze(&s.state);
		shutdown_services();
		gw_keys_free(&s.keys);
		gw_state_close(&s.state);
		return 1;
	}
	/* The line a supervisor (or a test) waits for. */
	printf("airlock-gateway: listening on %.*s:%u\n",
	       (int)(strrchr(listen_addr, ':') - listen_addr), listen_addr, port);
	fflush(stdout);
	while (sigwait(&set, &sig) == 0 && sig != SIGINT && sig != SIGTERM)
		;
	log_info("stopping on signal %d", sig);
	/* With a state directory what is on disk stays as it is: the next gateway's. */
	gw_state_freeze(&s.state);
	shutdown_services();
	gw_server_stop(&s);
	gw_keys_free(&s.keys);
	gw_state_close(&s.state);
	curl_global_cleanup();
	return 0;
}
