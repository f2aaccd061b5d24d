/* SPDX-License-Identifier: Apache-2.0 */
#include "reaper.h"

#include "cleanup.h"
#include "http.h"
#include "json.h"
#include "log.h"

#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUEST_TIMEOUT_MS 60000

static void http_closep(struct al_http **h)
{
	if (*h)
		al_http_close(*h);
}

/* What the queue says about the run a sandbox is named after: true when it may go. */
static int may_go(struct al_db *db, const char *run_id, const char *sandbox_id, const char *node,
                  bool *go, struct al_error *err)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	const char *params[] = {run_id, node, sandbox_id};
	int rc = al_db_exec(db,
	                    "SELECT status = 'cancelled'"
	                    "  OR (status IN ('completed', 'failed') AND named IS DISTINCT FROM $3)"
	                    "  OR (status = 'running' AND named IS DISTINCT FROM $3"
	                    "      AND NOT (left(leased_by, length($2) + 1) = $2 || ':'"
	                    "           AND lease_expires > clock_timestamp()))"
	                    " FROM (SELECT status, leased_by, lease_expires,"
	                    "         state::jsonb #>> '{sandbox,sandbox_id}' AS named"
	                    "       FROM airlock_runs WHERE run_id = $1) r",
	                    3, params, NULL, NULL, 0, &res, err);

	if (rc < 0)
		return rc;
	/* No row: not a run of the queue, not ours to judge. */
	*go = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
	return 0;
}

int al_reap_sandboxes(struct al_db *db, const char *socket_path, const char *node, int *deleted,
                      struct al_error *err)
{
	struct al_http http;
	_cleanup_(http_closep) struct al_http *h = NULL;
	struct al_http_config hc = {.timeout_ms = REQUEST_TIMEOUT_MS,
	                            .connect_timeout_ms = 10000,
	                            .unix_socket = socket_path};
	struct al_http_request rq = {
	    .method = "GET", .url = "http://airlockd/v1/sandboxes", .what = "list sandboxes"};
	struct al_http_response resp = {0};
	_cleanup_cjson_ cJSON *list = NULL;
	const cJSON *sb;
	int rc;

	*deleted = 0;
	if ((rc = al_http_open(&http, &hc, err)) < 0)
		return rc;
	h = &http;
	rc = al_http_do(h, &rq, &resp, err);
	if (rc == 0 && resp.status != 200)
		rc = al_http_status_error(&resp, EIO, "list sandboxes", err);
	if (rc == 0 &&
	    !(list = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "", resp.body.len)))
		rc = al_error_set(err, EBADMSG, "list sandboxes: the answer is not JSON");
	al_http_response_free(&resp);
	if (rc < 0)
		return rc;
	cJSON_ArrayForEach(sb, cJSON_GetObjectItemCaseSensitive(list, "sandboxes"))
	{
		const char *id = al_json_str(sb, "id");
		const char *name = al_json_str(sb, "name");
		struct al_http_request del = {
		    .method = "DELETE", .what = "delete sandbox", .idempotent = true};
		struct al_http_response dresp = {0};
		_cleanup_free_ char *url = NULL;
		bool go = false;

		if (!id || !name)
			continue;
		if ((rc = may_go(db, name, id, node, &go, err)) < 0)
			return rc;
		if (!go)
			continue;
		if (asprintf(&url, "http://airlockd/v1/sandboxes/%s", id) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		del.url = url;
		rc = al_http_do(h, &del, &dresp, err);
		if (rc == 0 && dresp.status != 200 && dresp.status != 404)
			rc = al_http_status_error(&dresp, EIO, "delete sandbox", err);
		al_http_response_free(&dresp);
		if (rc < 0) {
			log_warn("reap sandbox %s of run %s: %s", id, name, err->msg);
			continue;
		}
		log_info("deleted sandbox %s: run %s no longer needs it on this node", id, name);
		(*deleted)++;
	}
	return 0;
}
