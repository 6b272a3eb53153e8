#!/bin/sh
# A program already on the host, as is.
exec python3 -m http.server "$PORT" --bind 127.0.0.1
