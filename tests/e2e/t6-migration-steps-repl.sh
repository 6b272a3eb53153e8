#!/usr/bin/env bash
# t6-migration-steps-repl: kill -9 at every step boundary of a whole
# migration that replicates (--replicate, issue 14), the rotation of
# victims starting at the source node. See migrate-steps.sh.
ROTATION=1
MIGRATE_ARGS=--replicate
. "$(dirname "$0")/migrate-steps.sh"
