#!/usr/bin/env bash
# t6-migration-steps-2: kill -9 at every step boundary of a whole migration,
# the rotation of victims (portal, source node, target node) starting at
# the source node. See migrate-steps.sh.
ROTATION=1
. "$(dirname "$0")/migrate-steps.sh"
