#!/bin/sh
# Container entrypoint: Docker/Swarm secrets named after a CallFS environment
# variable (e.g. /run/secrets/CALLFS_AUTH__INTERNAL_PROXY_SECRET) become that
# variable, so secrets never sit in a config file or in `docker inspect`.
set -eu
if [ -d /run/secrets ]; then
  for f in /run/secrets/CALLFS_*; do
    [ -f "$f" ] || continue
    name=$(basename "$f")
    value=$(cat "$f")
    export "$name=$value"
  done
fi
exec node /app/dist/cli.js "$@"
