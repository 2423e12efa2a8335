#!/usr/bin/env bash
# The whole test suite: generated code check, typecheck, lint, build, unit tests, end-to-end tests — on a fresh
# machine too, as CI runs it.
#
# First the test environment (scripts/test-env.sh: Docker Engine, OCI registry, PostgreSQL, sshd...; idempotent and
# quick when everything is there). If it cannot be prepared (no root and no sudo, no package mirror), the run stops at
# once saying the one command that does it, instead of running a partial suite. Then every suite runs for real:
# CI=true turns a missing Docker Engine or PostgreSQL into a failure, never a skip, and the PostgreSQL half of the store
# suites uses FERRY_TEST_DATABASE_URL (default: the server test-env.sh starts).
#   FERRY_TEST_SETUP=0   the environment is prepared some other way; do not run test-env.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if [ "${FERRY_TEST_SETUP:-1}" != 0 ]; then
  step "test environment (scripts/test-env.sh)"
  if [ "$(id -u)" != 0 ] && ! sudo -n true 2>/dev/null; then
    printf '\nnpm test: the test environment needs root to install and start Docker, the registry and PostgreSQL.\n' >&2
    printf 'Run this once, then npm test again:\n\n    sudo bash scripts/test-env.sh\n\n' >&2
    printf '(or FERRY_TEST_SETUP=0 npm test when the environment is prepared another way)\n' >&2
    exit 2
  fi
  if ! bash scripts/test-env.sh; then
    printf '\nnpm test: scripts/test-env.sh could not prepare the test environment (see above); fix that and run it again:\n\n    sudo bash scripts/test-env.sh\n\n' >&2
    exit 2
  fi
fi
export CI="${CI:-true}"
export FERRY_TEST_DATABASE_URL="${FERRY_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test}"

step "generated code is up to date"
npm run --silent gen:check
step "typecheck"
npm run --silent typecheck
step "lint"
npm run --silent lint
step "build"
npm run --silent build
step "unit and store tests"
npm run --silent test:unit
step "end-to-end tests"
npm run --silent test:e2e
