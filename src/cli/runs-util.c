/* Following a one-off run (nubo envs run, nubo envs psql): its output as
 * it comes, then its exit status as ours. Ctrl-C stops the run. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "envs-util.h"
#include "jsonx.h"
#include "nubo_limits.h"
#include "util.h"
#include "xmalloc.h"

static volatile sig_atomic_t runs_interrupted;

static void
on_interrupt(int sig)
{
	(void)sig;
	runs_interrupted = 1;
}

/* Write the base64 output of a run's answer to stdout. */
static int
runs_print(json_t *resp)
{
	const char *b64 = jsonx_str(resp, "output");
	size_t len = b64 ? strlen(b64) : 0, n = 0;
	unsigned char *bin = xmalloc(len + 1);
	int rc = 0;

	if ((len && sodium_base642bin(bin, len, b64, len, NULL, &n, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0) ||
	    (n && fwrite(bin, 1, n, stdout) != n))
		rc = -1;
	fflush(stdout);
	free(bin);
	return rc;
}

static int
runs_follow(const char *app, const char *env, json_t *started,
    const char *what)
{
	char *id = api_escape(jsonx_str(started, "id") ? jsonx_str(started,
	    "id") : ""), *suffix = xasprintf("/runs/%s", id);
	char *base = envs_util_path(app, env, suffix), *path = NULL;
	long long off = 0, wait_us = 20 * 1000;
	json_t *resp = NULL;
	const char *state;
	int rc = CLI_FAILED, stopping = 0;
	struct sigaction sa = { .sa_handler = on_interrupt }, old_int,
	    old_term;

	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	for (;;) {
		if (runs_interrupted && !stopping) {
			stopping = 1;
			fprintf(stderr, "nubo: stopping %s\n", what);
			if (api_ok("DELETE", base, NULL, NULL) == -1)
				goto out;
		}
		free(path);
		path = xasprintf("%s?offset=%lld", base, off);
		json_decref(resp);
		resp = NULL;
		if (api_ok("GET", path, NULL, &resp) == -1)
			goto out;
		if (runs_print(resp) == -1) {
			fprintf(stderr, "nubo: cannot write the output\n");
			goto out;
		}
		off = jsonx_int(resp, "offset", off);
		state = jsonx_str(resp, "state");
		if (jsonx_bool(resp, "more", 0))
			continue;
		if (state && strcmp(state, "running") != 0)
			break;
		usleep((useconds_t)wait_us);
		if (wait_us < 500 * 1000)
			wait_us += wait_us / 2;
	}
	rc = (int)jsonx_int(resp, "exit_status", CLI_FAILED);
	if (strcmp(state, "timed-out") == 0)
		fprintf(stderr, "nubo: %s ran out of its time limit (%lld s) "
		    "and was stopped\n", what, jsonx_int(resp, "timeout", 0));
	else if (strcmp(state, "output-limit") == 0)
		fprintf(stderr, "nubo: %s printed more than the node keeps "
		    "and was stopped\n", what);
	else if (strcmp(state, "lost") == 0)
		fprintf(stderr, "nubo: the node restarted while %s ran; its "
		    "end is unknown\n", what);
	else if (jsonx_bool(resp, "oom_killed", 0))
		fprintf(stderr, "nubo: %s was killed for using more than its "
		    "memory limit\n", what);
	if (strcmp(state, "exited") != 0)
		rc = CLI_FAILED;
	if (runs_interrupted)
		rc = 130;
out:
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	json_decref(resp);
	free(path);
	free(base);
	free(suffix);
	free(id);
	return rc;
}

int
runs_util_run(const char *app, const char *env, const char *suffix,
    json_t *body, const char *what)
{
	char *path = envs_util_path(app, env, suffix);
	json_t *resp = NULL;
	int rc = CLI_FAILED;

	if (api_ok("POST", path, body, &resp) != -1)
		rc = runs_follow(app, env, resp, what);
	json_decref(resp);
	free(path);
	return rc;
}

/* --input FILE ("-": standard input): its text; NULL after a message. */
char *
runs_util_input(const char *file)
{
	size_t len = 0;
	char *text = util_read_file(file, NUBO_RUN_INPUT_MAX, &len);

	if (text == NULL)
		out_fail("cannot read %s (at most %d bytes)", file,
		    NUBO_RUN_INPUT_MAX);
	return text;
}
