/* nubo login URL: log in with email + password (or check a given key) and
 * store the portal URL and an API key in ~/.config/nubo/config (0600). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "xmalloc.h"

/* One line from stdin without its newline; echo off on a terminal. */
static char *
read_line(const char *prompt, int secret)
{
	struct termios old, quiet;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int tty = isatty(STDIN_FILENO);

	if (tty) {
		fputs(prompt, stderr);
		if (secret) {
			tcgetattr(STDIN_FILENO, &old);
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
		}
	}
	n = getline(&line, &cap, stdin);
	if (tty && secret) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (n <= 0) {
		free(line);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

static int
cmd_login_exec(struct cmd_args *a)
{
	const char *url = a->argv[0];
	const char *key = cmd_opt(a, "key");
	char *email = NULL, *password = NULL;
	json_t *resp = NULL, *body = NULL;
	int rc = CLI_FAILED;

	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return out_usage(cmd_current, "URL must start with http:// "
		    "or https://");
	setenv("NUBO_URL", url, 1);
	if (key) {
		setenv("NUBO_API_KEY", key, 1);
		if (api_ok("GET", "/me", NULL, &resp) == -1)
			goto out;
	} else {
		unsetenv("NUBO_API_KEY");
		email = cmd_opt(a, "email") ? xstrdup(cmd_opt(a, "email")) :
		    read_line("email: ", 0);
		password = read_line("password: ", 1);
		if (email == NULL || password == NULL) {
			out_fail("email and password are needed");
			goto out;
		}
		body = json_pack("{s:s,s:s,s:s}", "email", email, "password",
		    password, "name", "nubo login");
		if (api_ok("POST", "/sessions", body, &resp) == -1)
			goto out;
		key = jsonx_str(resp, "key");
	}
	if (api_save_login(url, key) == 0) {
		printf("logged in to %s\n", url);
		rc = CLI_OK;
	}
out:
	json_decref(body);
	json_decref(resp);
	free(email);
	free(password);
	return rc;
}

const struct cmd_entry cmd_login_entry = {
	"login", NULL, "URL", "email=,key=", 1, 1,
	"log in to a nubo portal and remember it",
	"Asks for email and password (read from standard input when it is\n"
	"not a terminal) and stores a new API key; --key stores a given key.\n"
	"NUBO_URL and NUBO_API_KEY override the stored login.",
	cmd_login_exec, 1,
};
