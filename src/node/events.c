/* Scheduled events (SPEC §2 Model Options): for every running environment
 * the node triggers each enabled scheduled event on its interval with
 * POST /_nubo/events/<name> to one instance (round robin over the healthy
 * ones). Which events are enabled comes from the spec the portal pushes
 * ("scheduled_events": [{name, every_seconds?}]); the interval from the
 * spec or else from the deployed package's manifest (DIR/envs/<id>/app/
 * nubo.json, "scheduled_events": [{name, every}]). */
#include "node.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "jsonx.h"
#include "log.h"
#include "settings-validate.h"
#include "util.h"
#include "xmalloc.h"

#define EVENTS_MAX	512	/* (environment, event) pairs tracked */

/* When each (environment, event) is next due. */
static struct due {
	long long	 env_id;
	char		 name[129];
	double		 next;
	unsigned	 turn;		/* round robin over instances */
} events_due[EVENTS_MAX];
static int events_ndue;

static struct due *
due_get(long long env_id, const char *name, double now, long long every)
{
	int i;

	for (i = 0; i < events_ndue; i++)
		if (events_due[i].env_id == env_id &&
		    strcmp(events_due[i].name, name) == 0)
			return &events_due[i];
	if (events_ndue == EVENTS_MAX)
		return NULL;
	events_due[events_ndue].env_id = env_id;
	snprintf(events_due[events_ndue].name, sizeof events_due[0].name, "%s",
	    name);
	/* the first run comes one interval after the event is enabled */
	events_due[events_ndue].next = now + (double)every;
	events_due[events_ndue].turn = 0;
	return &events_due[events_ndue++];
}

/* Forget events no longer enabled, so enabling again restarts the clock. */
static void
due_keep_only(long long env_id, json_t *enabled)
{
	int i, j;

	for (i = 0; i < events_ndue; ) {
		int keep = events_due[i].env_id != env_id;
		json_t *v;
		size_t k;

		json_array_foreach(enabled, k, v)
			if (events_due[i].env_id == env_id &&
			    jsonx_str(v, "name") && strcmp(jsonx_str(v, "name"),
			    events_due[i].name) == 0)
				keep = 1;
		if (keep) {
			i++;
			continue;
		}
		for (j = i; j + 1 < events_ndue; j++)
			events_due[j] = events_due[j + 1];
		events_ndue--;
	}
}

/* The interval of an event: spec first, then the package's manifest. */
static long long
event_every(struct env *e, json_t *ev)
{
	long long every = jsonx_int(ev, "every_seconds", 0);
	char *path, *text;
	json_t *m, *d;
	size_t i;

	if (every > 0)
		return every;
	path = xasprintf("%s/app/nubo.json", e->dir);
	text = util_read_file(path, NUBO_MANIFEST_MAX, NULL);
	free(path);
	if (text == NULL)
		return -1;
	m = json_loads(text, 0, NULL);
	free(text);
	json_array_foreach(json_object_get(m, "scheduled_events"), i, d)
		if (jsonx_str(d, "name") && jsonx_str(ev, "name") &&
		    strcmp(jsonx_str(d, "name"), jsonx_str(ev, "name")) == 0)
			every = sv_interval(jsonx_str(d, "every"));
	json_decref(m);
	return every > 0 ? every : -1;
}

struct fire {
	long long	 env_id;
	int		 index;	/* 1-based instance */
	int		 port;
	char		 name[129];
};

static size_t
discard(char *p, size_t s, size_t n, void *u)
{
	(void)p; (void)u;
	return s * n;
}

static void
fire_one(struct fire *f)
{
	CURL *c = curl_easy_init();
	char *esc = curl_easy_escape(c, f->name, 0);
	char *url = xasprintf("http://localhost/_nubo/events/%s", esc);
	long status = 0;
	CURLcode cc;
	struct env *e;

	curl_easy_setopt(c, CURLOPT_URL, url);
	sandbox_curl_instance(c, f->env_id, f->index);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	cc = curl_easy_perform(c);
	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	pthread_mutex_lock(&node->lock);
	if ((e = env_find(f->env_id)) != NULL) {
		if (cc != CURLE_OK)
			env_log(e, "scheduled event %s: instance on port %d: %s",
			    f->name, f->port, curl_easy_strerror(cc));
		else
			env_log(e, "scheduled event %s: instance on port %d "
			    "answered %ld", f->name, f->port, status);
	}
	pthread_mutex_unlock(&node->lock);
	curl_free(esc);
	free(url);
	curl_easy_cleanup(c);
}

static void *
events_loop(void *arg)
{
	(void)arg;
	for (;;) {
		struct fire fires[32];
		int nfire = 0, i;
		double now = util_mono();
		struct env *e;

		pthread_mutex_lock(&node->lock);
		for (e = node->envs; e; e = e->next) {
			json_t *evs = json_object_get(e->spec,
			    "scheduled_events"), *ev;
			size_t k;

			due_keep_only(e->id, e->state == ENV_RUNNING ? evs :
			    NULL);
			if (e->state != ENV_RUNNING)
				continue;
			json_array_foreach(evs, k, ev) {
				const char *name = jsonx_str(ev, "name");
				long long every;
				struct due *d;
				int idx[NUBO_INSTANCES_MAX], np = 0, pick;
				char *cause = NULL;

				if (name == NULL || sv_constant_name(name,
				    &cause) == -1) {
					free(cause);
					continue;
				}
				if ((every = event_every(e, ev)) <= 0)
					continue;
				if ((d = due_get(e->id, name, now, every)) == NULL
				    || now < d->next || nfire == 32)
					continue;
				d->next = now + (double)every;
				for (i = 0; i < NUBO_INSTANCES_MAX; i++)
					if (e->inst[i].state == INST_RUNNING &&
					    e->inst[i].pid > 0)
						idx[np++] = i;
				if (np == 0)
					continue;
				pick = idx[d->turn++ % (unsigned)np];
				fires[nfire].env_id = e->id;
				fires[nfire].index = pick + 1;
				fires[nfire].port = e->inst[pick].port;
				snprintf(fires[nfire].name,
				    sizeof fires[nfire].name, "%s", name);
				nfire++;
			}
		}
		pthread_mutex_unlock(&node->lock);
		for (i = 0; i < nfire; i++)
			fire_one(&fires[i]);
		sleep(1);
	}
	return NULL;
}

/* Start the scheduled-events thread (once, after the environments are
 * loaded). */
void
events_start(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, events_loop, NULL) == 0)
		pthread_detach(t);
	else
		log_error("cannot start the scheduled events thread");
}
