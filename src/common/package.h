/* Deployment packages (SPEC §2 Packages, §6): an archive (zip, tar.gz or
 * tar; `.mda` accepted as a name) with `nubo.json` at its root. Validation
 * and extraction stream the archive through a fixed buffer; every entry is
 * checked (path inside the root, type, size, duplicates) and gzip's CRC is
 * verified, so a truncated or bit-flipped archive is refused. */
#ifndef NUBO_PACKAGE_H
#define NUBO_PACKAGE_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

enum package_ctype {
	PACKAGE_CONST_STRING,
	PACKAGE_CONST_INTEGER,
	PACKAGE_CONST_DECIMAL,
	PACKAGE_CONST_BOOLEAN,
	PACKAGE_CONST_DATETIME,
};

/* A constant declared by the package (SPEC §2 Model Options). */
struct package_constant {
	char			*name;
	enum package_ctype	 type;
	json_t			*dflt;		/* NULL when no default */
};

/* A scheduled event the node triggers with POST /_nubo/events/<name>. */
struct package_event {
	char		*name;
	char		*every;			/* as written: "30s", "5m", "1h", "1d" */
	long long	 every_seconds;
};

struct package_manifest {
	char			*name;
	char			*version;
	char			*start;		/* relative path, normalised */
	char			*health;	/* absolute URL path, "/healthz" */
	struct package_constant	*constants;
	size_t			 nconstants;
	struct package_event	*events;
	size_t			 nevents;
};

void package_manifest_init(struct package_manifest *m);
void package_manifest_release(struct package_manifest *m);

/* Parse and check a manifest (unknown fields rejected). 0, or -1 with
 * *cause ("nubo.json: …") set for the caller to free; m is then empty. */
int package_manifest_parse(const char *data, size_t len,
    struct package_manifest *m, char **cause);
/* The same from an already parsed JSON object (e.g. a stored record). */
int package_manifest_from_json(json_t *obj, struct package_manifest *m,
    char **cause);
/* The manifest as a new JSON object in nubo.json's own shape. */
json_t *package_manifest_json(const struct package_manifest *m);

/* Name of a constant type ("string", …). */
const char *package_ctype_name(enum package_ctype t);
/* Seconds in an event period ("30s", "5m", "1h", "1d"); -1 when invalid. */
long long package_parse_every(const char *s);

/* Read the whole archive at path and check it. 0 with *out filled (out may
 * be NULL), or -1 with *cause set: broken or truncated archive, bad or
 * missing nubo.json, an entry escaping the root, a link leaving it, a
 * device file, a duplicate entry, too many or oversized entries, a
 * missing start file. Never writes anything. */
int package_validate(const char *path, struct package_manifest *out,
    char **cause);
/* The same on an open file descriptor (read from its current offset;
 * the fd is not closed). */
int package_validate_fd(int fd, struct package_manifest *out, char **cause);
/* Reads the next bytes of a package into buf (at most len): how many
 * (> 0), 0 at its end, or -1 with errno set. */
typedef ssize_t (*package_reader)(void *arg, void *buf, size_t len);
/* The same checks on a tar.gz package of size bytes read once, in order,
 * from fn, so a package can be checked while it arrives. Reads to the
 * end unless the check fails first. */
int package_validate_gzip_stream(package_reader fn, void *arg, long long size,
    struct package_manifest *out, char **cause);

/* Validate, then unpack into dest_dir: the tree is written to a temporary
 * folder next to dest_dir and renamed into place (an existing dest_dir is
 * swapped out and removed), so dest_dir is never half-extracted. Regular
 * files get mode 0644 or 0755 (the start file always 0755); owners,
 * setuid bits and ACLs in the archive are ignored. 0, or -1 with *cause. */
int package_extract(const char *path, const char *dest_dir, char **cause);

/* The labels a package may carry for the Mendix Build and Team Server
 * APIs (docs/MENDIX-API.md): a branch, 1 to 128 of [A-Za-z0-9._-]
 * (no '/': it names a path), and a revision, a number from 0 to 10^15.
 * Either may be NULL (not given). 0 with *rev (-1 for none), or -1 with
 * *cause. */
int package_label_check(const char *branch, const char *revision,
    long long *rev, char **cause);

#endif
