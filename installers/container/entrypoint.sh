#!/bin/sh
# Enrols on the first start (FERRY_JOIN set, no identity in the state volume yet), then runs the agent. The join
# string is single-use: once enrolled, the identity in the volume is what counts, and FERRY_JOIN is dropped from the
# environment before the agent runs.
set -eu
STATE="${FERRY_AGENT_STATE_DIR:-/var/lib/ferry-agent}"
# FERRY_AGENT_NODE_FLAGS (set by the image) carries node's runtime flags; unquoted on purpose, one word each.
# --jitless removes WebAssembly, which the SSH driver needs: the agent says which of the flags suit its configuration
# (docs/agent.md, "Node flags").
FLAGS="${FERRY_AGENT_NODE_FLAGS:-}"
case "$FLAGS" in
  *jitless* | *lite?mode* | *expose?wasm*)
    # shellcheck disable=SC2086
    FLAGS=$(node $FLAGS /opt/ferry-agent/ferry-agent.mjs node-flags run --state-dir "$STATE" "$@") || exit $? ;;
esac
AGENT="node $FLAGS /opt/ferry-agent/ferry-agent.mjs"
if [ ! -f "$STATE/identity.json" ]; then
  if [ -z "${FERRY_JOIN:-}" ]; then
    echo "ferry-agent: not enrolled and FERRY_JOIN is not set (create a join string with: ferry token create --env ENV)" >&2
    exit 3
  fi
  $AGENT enrol --state-dir "$STATE" --name "${FERRY_AGENT_NAME:-$(hostname)}" || exit 3
fi
unset FERRY_JOIN
exec $AGENT run --state-dir "$STATE" "$@"
