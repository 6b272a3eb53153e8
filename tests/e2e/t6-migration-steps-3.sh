#!/usr/bin/env bash
# t6-migration-steps-3: kill -9 at every step boundary of a whole migration,
# the rotation of victims (portal, source node, target node) starting at
# the target node. See migrate-steps.sh.
ROTATION=2
. "$(dirname "$0")/migrate-steps.sh"
