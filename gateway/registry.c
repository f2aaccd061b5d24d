/* SPDX-License-Identifier: Apache-2.0 */
#include "registry.h"

#include "cleanup.h"
#include "json.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int gw_entry_init(struct gw_entry *e, const char *tenant)
{
	memset(e, 0, sizeof(*e));
	e->refs = 1;
	e->tenant = strdup(tenant);
	return e->tenant ? 0 : -ENOMEM;
}

void gw_entry_done(struct gw_entry *e)
{
	free(e->tenant);
	e->tenant = NULL;
}

void gw_registry_lock(struct gw_registry *r)
{
	pthread_mutex_lock(&r->lock);
}

void gw_registry_unlock(struct gw_registry *r)
{
	pthread_mutex_unlock(&r->lock);
}

/* Under the lock. */
static void link_entry(struct gw_registry *r, struct gw_entry *e)
{
	e->next = r->head;
	r->head = e;
	e->listed = true;
	e->refs++;
}

int gw_registry_open(struct gw_registry *r, const struct gw_registry_ops *ops,
                     struct gw_state *state, struct al_error *err)
{
	_cleanup_cjson_ cJSON *doc = NULL;
	const cJSON *record;
	size_t n = 0;
	int rc;

	r->ops = ops;
	r->state = state;
	r->head = NULL;
	pthread_mutex_init(&r->lock, NULL);
	rc = gw_state_load(state, ops->service, &doc, err);
	if (rc < 0 || !doc)
		return rc;
	cJSON_ArrayForEach(record, cJSON_GetObjectItemCaseSensitive(doc, "sandboxes"))
	{
		struct gw_entry *e = ops->load(record);
		if (!e) {
			log_warn("%s registry: an unusable record skipped", ops->what);
			continue;
		}
		link_entry(r, e);
		e->refs--; /* the loader's own */
		n++;
	}
	if (n)
		log_info("%s: %zu sandboxes from the saved registry", ops->what, n);
	return ops->load_more ? ops->load_more(doc, err) : 0;
}

void gw_registry_save(struct gw_registry *r)
{
	_cleanup_cjson_ cJSON *doc = NULL;
	struct al_error e = AL_ERROR_INIT;
	cJSON *list;
	uint64_t gen;

	if (!gw_state_persistent(r->state))
		return;
	doc = cJSON_CreateObject();
	list = cJSON_AddArrayToObject(doc, "sandboxes");
	pthread_mutex_lock(&r->lock);
	gen = gw_state_generation(r->state, r->ops->service);
	for (struct gw_entry *x = r->head; x; x = x->next)
		cJSON_AddItemToArray(list, r->ops->save(x));
	if (r->ops->save_more)
		r->ops->save_more(doc);
	pthread_mutex_unlock(&r->lock);
	if (gw_state_save(r->state, r->ops->service, gen, doc, &e) < 0)
		log_error("%s registry not saved: %s", r->ops->what, e.msg);
}

void gw_registry_add(struct gw_registry *r, struct gw_entry *e)
{
	pthread_mutex_lock(&r->lock);
	link_entry(r, e);
	pthread_mutex_unlock(&r->lock);
	gw_registry_save(r);
}

struct gw_entry *gw_registry_find(struct gw_registry *r, const char *key, const char *tenant)
{
	struct gw_entry *found = NULL;

	if (!key)
		return NULL;
	pthread_mutex_lock(&r->lock);
	for (struct gw_entry *x = r->head; x; x = x->next)
		if ((!tenant || !strcmp(x->tenant, tenant)) &&
		    (!strcmp(x->id, key) || (x->name && !strcmp(x->name, key)))) {
			found = x;
			found->refs++;
			break;
		}
	pthread_mutex_unlock(&r->lock);
	return found;
}

struct gw_entry *gw_registry_find_if(struct gw_registry *r,
                                     bool (*pred)(const struct gw_entry *e, void *ctx), void *ctx)
{
	struct gw_entry *found = NULL;

	pthread_mutex_lock(&r->lock);
	for (struct gw_entry *x = r->head; x; x = x->next)
		if (pred(x, ctx)) {
			found = x;
			found->refs++;
			break;
		}
	pthread_mutex_unlock(&r->lock);
	return found;
}

void gw_registry_release(struct gw_registry *r, struct gw_entry *e)
{
	bool last;

	if (!e)
		return;
	pthread_mutex_lock(&r->lock);
	last = --e->refs == 0;
	pthread_mutex_unlock(&r->lock);
	if (last)
		r->ops->free(e);
}

bool gw_registry_remove(struct gw_registry *r, struct gw_entry *e)
{
	bool was = false;

	pthread_mutex_lock(&r->lock);
	for (struct gw_entry **pp = &r->head; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			e->listed = false;
			e->refs--; /* the registry's; the caller still holds one */
			was = true;
			break;
		}
	pthread_mutex_unlock(&r->lock);
	if (was)
		gw_registry_save(r);
	return was;
}

cJSON *gw_registry_list(struct gw_registry *r, const char *tenant,
                        cJSON *(*show)(const struct gw_entry *e, void *ctx), void *ctx)
{
	cJSON *list = cJSON_CreateArray();

	pthread_mutex_lock(&r->lock);
	for (struct gw_entry *x = r->head; x; x = x->next)
		if (!tenant || !strcmp(x->tenant, tenant))
			cJSON_AddItemToArray(list, show(x, ctx));
	pthread_mutex_unlock(&r->lock);
	return list;
}

void gw_registry_close(struct gw_registry *r, void (*discard)(struct gw_entry *e))
{
	bool keep = gw_state_persistent(r->state);

	if (!r->ops)
		return; /* never opened */
	for (;;) {
		struct gw_entry *e;
		pthread_mutex_lock(&r->lock);
		e = r->head;
		if (e) {
			r->head = e->next;
			e->listed = false; /* the registry's reference passes to this loop */
		}
		pthread_mutex_unlock(&r->lock);
		if (!e)
			break;
		if (!keep && discard)
			discard(e);
		gw_registry_release(r, e);
	}
}
