/* The portal's pages: the files of web/, built into nubod
 * (cmake/embed-web.cmake writes web_assets[]) and served by web.c. */
#ifndef NUBO_WEB_H
#define NUBO_WEB_H

#include <stddef.h>

struct web_asset {
	const char		*path;		/* "/app.js" */
	const unsigned char	*data;
	size_t			 len;
};

extern const struct web_asset web_assets[];
extern const size_t web_assets_count;

#endif
