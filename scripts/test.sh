#!/usr/bin/env bash
# The whole test suite: generated code check, typecheck, lint, build, unit tests, end-to-end tests.
# Uses the PostgreSQL server named by FERRY_TEST_DATABASE_URL for the PostgreSQL half of the store suites when set.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

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
