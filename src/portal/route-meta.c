/* GET /openapi.json: the API described from the route table itself. */
#include "portal.h"

void
meta_openapi(struct preq *r)
{
	reply(r, 200, routes_describe());
}
