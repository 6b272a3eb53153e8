#!/bin/sh
# A program already on the host, as is — and a stubborn one: it ignores
# SIGTERM (inherited across exec), so a stop must end with SIGKILL.
trap '' TERM
exec python3 -m http.server "$PORT" --bind 127.0.0.1
