#!/bin/sh
# Creates the Docker secrets swarm/callfs-stack.yml uses, with random values
# (run once on a Swarm manager). Prints the admin API key once.
set -eu
rand() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
new() { printf '%s' "$2" | docker secret create "$1" - >/dev/null; }
admin_key=$(rand)
pg_password=$(rand)
new callfs_admin_api_key "$admin_key"
new callfs_internal_proxy_secret "$(rand)"
new callfs_single_use_link_secret "$(rand)"
new callfs_postgres_password "$pg_password"
new callfs_postgres_dsn "postgres://callfs:${pg_password}@postgres:5432/callfs"
new callfs_redis_password "$(rand)"
echo "API key of user admin: $admin_key"
