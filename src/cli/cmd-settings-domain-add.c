/* nubo settings domain-add APP ENV DOMAIN [--cert FILE --key FILE] */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cli.h"
#include "settings-cli.h"

static int
cmd_settings_domain_add_exec(struct cmd_args *a)
{
	const char *cf = cmd_opt(a, "cert"), *kf = cmd_opt(a, "key");
	char *cert = NULL, *key = NULL, *path = NULL;
	int rc = CLI_FAILED;

	if ((cf == NULL) != (kf == NULL))
		return out_usage(cmd_current, "--cert and --key go together");
	path = settings_cli_path(a->argv[0], a->argv[1], "/domains",
	    a->argv[2]);
	if (cf == NULL) {
		/* no certificate of the user's: the node obtains one by ACME */
		rc = settings_cli_change(a, "PUT", path, json_object());
		goto out;
	}
	if ((cert = settings_cli_read(cf, "certificate")) == NULL ||
	    (key = settings_cli_read(kf, "private key")) == NULL)
		goto out;
	rc = settings_cli_change(a, "PUT", path, json_pack("{s:s,s:s}",
	    "certificate", cert, "private_key", key));
out:
	if (key)
		sodium_memzero(key, strlen(key));
	free(key);
	free(cert);
	free(path);
	return rc;
}

const struct cmd_entry cmd_settings_domain_add_entry = {
	"settings", "domain-add", "APP ENV DOMAIN", "cert=,key=,json", 3, 3,
	"add (or replace) a custom domain with its TLS certificate and key",
	"--cert is a PEM certificate chain (leaf first), --key its unencrypted\n"
	"PEM private key. The portal refuses a key that does not match, an\n"
	"expired certificate, and one that does not cover DOMAIN. The key is\n"
	"stored encrypted and never shown again. Without --cert and --key the\n"
	"node obtains a certificate for DOMAIN by ACME (its --acme-directory;\n"
	"DOMAIN must point at the node's router, port 80 reaching it).",
	cmd_settings_domain_add_exec, 0,
};
