#!/usr/bin/env bash
# Prepares this machine for the test suite. Safe to run repeatedly.
#  - Debian packages the suites run for real: docker-registry (an OCI registry; each suite starts its own instance
#    on 127.0.0.1 with its own config) and apache2-utils (htpasswd, for the registry's basic-auth realm).
#  - PostgreSQL on 127.0.0.1:5432 with a `test` database (used when FERRY_TEST_DATABASE_URL is set).
# Everything it starts listens on loopback only.
set -euo pipefail

log() { printf 'test-env: %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The package starts a registry on :5000 through its init script where there is one; the suites run their own.

if command -v pg_isready >/dev/null 2>&1; then
  if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    log "starting PostgreSQL"
    for v in $(ls /etc/postgresql 2>/dev/null); do
      as_root pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
    done
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  fi
  if pg_isready -h 127.0.0.1 -p 5432 -q; then
    psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" postgres | grep -q 1 \
      || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" postgres
    log "PostgreSQL ready on 127.0.0.1:5432"
  else
    log "PostgreSQL is not available; the PostgreSQL half of the store suites will not run"
  fi
else
  log "pg_isready not found; install PostgreSQL to run the PostgreSQL half of the store suites"
fi
