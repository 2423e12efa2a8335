#!/usr/bin/env bash
# Installs the Ferry agent on a Linux host: the bundled agent, a system user, a state directory, enrolment with a
# join string, and a systemd service.
#
#   install.sh --bundle ferry-agent/ --join 'ferry-join-v1.…' [--name NAME] [--user ferry-agent]
#              [--docker-group docker | --no-docker] [--prefix DIR] [--no-systemd [--prune-chunks]] [--no-user] [--force]
#
# The join string is a secret: pass it with --join or FERRY_JOIN; it is never written to disk or logged.
# The service reaches the Docker Engine through the socket's group (--docker-group, default docker) and starts
# after docker.service; --no-docker leaves both out. --prefix installs under DIR (for images and tests);
# --no-systemd skips the unit's activation. The bundle is the directory `npm run bundle:agent` writes
# (installers/dist/ferry-agent: ferry-agent.mjs and its chunks). With systemd, the service is (re)started on the
# installed version and the chunks of earlier versions are removed; with --no-systemd they stay unless --prune-chunks
# says no agent of an earlier version runs.
# Exit codes: 0 installed, 2 usage or a missing prerequisite, 3 enrolment refused.
set -euo pipefail

BUNDLE="" JOIN="${FERRY_JOIN:-}" NAME="" USER_NAME="ferry-agent" PREFIX="" SYSTEMD=1 CREATE_USER=1 FORCE=0 PRUNE=0
DOCKER=1 DOCKER_GROUP="docker"

die() { printf 'install.sh: %s\n' "$1" >&2; exit "${2:-2}"; }
say() { printf 'install.sh: %s\n' "$1"; }
# The installed chunks the installed entry point does not belong with: those of earlier versions.
stale_chunks() {
  for f in "$OPT"/chunks/*; do
    [ -f "$f" ] || continue
    [ -f "$BUNDLE/chunks/$(basename "$f")" ] || printf '%s\n' "$f"
  done
}
prune_chunks() {
  local n=0 f
  while IFS= read -r f; do rm -f "$f"; n=$((n + 1)); done < <(stale_chunks)
  [ "$n" = 0 ] || say "removed $n chunk(s) of earlier versions"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) BUNDLE="${2:?--bundle needs a directory}"; shift 2 ;;
    --join) JOIN="${2:?--join needs a join string}"; shift 2 ;;
    --name) NAME="${2:?--name needs a value}"; shift 2 ;;
    --user) USER_NAME="${2:?--user needs a value}"; shift 2 ;;
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --no-systemd) SYSTEMD=0; shift ;;
    --prune-chunks) PRUNE=1; shift ;;
    --docker-group) DOCKER_GROUP="${2:?--docker-group needs a group}"; DOCKER=1; shift 2 ;;
    --no-docker) DOCKER=0; shift ;;
    --no-user) CREATE_USER=0; shift ;;
    --force) FORCE=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

[ -n "$BUNDLE" ] || die "--bundle is required (build it with: npm run bundle:agent)"
# The entry point's path names its directory too (older instructions passed the single file).
[ -f "$BUNDLE" ] && [ "$(basename "$BUNDLE")" = ferry-agent.mjs ] && BUNDLE="$(dirname "$BUNDLE")"
[ -f "$BUNDLE/ferry-agent.mjs" ] && [ -d "$BUNDLE/chunks" ] \
  || die "no agent bundle at $BUNDLE (expected the directory npm run bundle:agent writes, installers/dist/ferry-agent, with ferry-agent.mjs and chunks/)"
command -v node >/dev/null 2>&1 || die "Node.js >= 20.11 is required and 'node' is not on PATH"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=11)?0:1)' \
  || die "Node.js >= 20.11 is required; found $(node --version)"

OPT="$PREFIX/opt/ferry-agent"
BIN="$PREFIX/usr/local/bin/ferry-agent"
STATE="$PREFIX/var/lib/ferry-agent"
UNIT="$PREFIX/etc/systemd/system/ferry-agent.service"
HERE="$(cd "$(dirname "$0")" && pwd)"

if [ "$CREATE_USER" = 1 ]; then
  [ "$(id -u)" = 0 ] || die "run as root to create the service user, or pass --no-user"
  if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/ferry-agent --no-create-home --shell /usr/sbin/nologin "$USER_NAME"
    say "created system user $USER_NAME"
  fi
  RUN_AS="$USER_NAME"
else
  RUN_AS="$(id -un)"
fi

install -d -m 0755 "$OPT" "$OPT/chunks" "$(dirname "$BIN")"
# Chunks first, then the entry point in one rename: chunk names carry a hash of their content, so adding the new ones
# changes nothing an agent still running the old version may yet import. Those of older versions are removed once the
# service runs this one (below).
for f in "$BUNDLE"/chunks/*; do install -m 0644 "$f" "$OPT/chunks/"; done
for f in "$BUNDLE"/*.LEGAL.txt; do if [ -f "$f" ]; then install -m 0644 "$f" "$OPT/"; fi; done
install -m 0644 "$BUNDLE/ferry-agent.mjs" "$OPT/ferry-agent.mjs.new" && mv "$OPT/ferry-agent.mjs.new" "$OPT/ferry-agent.mjs"
# FERRY_AGENT_NODE_FLAGS (set by the systemd unit) carries node's runtime flags; unquoted on purpose, one word each.
# --jitless removes WebAssembly, which the SSH driver needs: before `run` and `enrol`, the agent says which of the flags
# suit its configuration (docs/agent.md, "Node flags").
cat > "$BIN.tmp" <<WRAPPER
#!/bin/sh
# shellcheck disable=SC2086
case "\${1:-}" in
  run | enrol | enroll)
    case "\${FERRY_AGENT_NODE_FLAGS:-}" in
      *jitless* | *lite?mode* | *expose?wasm*)
        FERRY_AGENT_NODE_FLAGS=\$(node \$FERRY_AGENT_NODE_FLAGS "$OPT/ferry-agent.mjs" node-flags "\$@") || exit \$? ;;
    esac ;;
esac
exec node \$FERRY_AGENT_NODE_FLAGS "$OPT/ferry-agent.mjs" "\$@"
WRAPPER
chmod 0755 "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
install -d -m 0700 "$STATE"
[ "$CREATE_USER" = 1 ] && chown "$USER_NAME:$USER_NAME" "$STATE"
say "installed $("$BIN" --version) to $OPT"

if [ -f "$STATE/identity.json" ] && [ "$FORCE" = 0 ]; then
  say "already enrolled ($STATE/identity.json); keeping that identity (use --force to enrol again)"
else
  [ -n "$JOIN" ] || die "--join is required for a first install (create one with: ferry token create --env ENV)"
  args=(enrol --state-dir "$STATE")
  [ -n "$NAME" ] && args+=(--name "$NAME")
  [ "$FORCE" = 1 ] && args+=(--force)
  # The join string goes through the environment, not argv, so it does not show in the process list.
  if [ "$CREATE_USER" = 1 ]; then
    FERRY_JOIN="$JOIN" runuser -u "$USER_NAME" --preserve-environment -- "$BIN" "${args[@]}" || die "enrolment failed (see above)" 3
  else
    FERRY_JOIN="$JOIN" "$BIN" "${args[@]}" || die "enrolment failed (see above)" 3
  fi
fi

install -d -m 0755 "$(dirname "$UNIT")"
sed -e "s#@USER@#$RUN_AS#g" -e "s#@BIN@#$BIN#g" -e "s#@STATE_DIR@#$STATE#g" "$HERE/ferry-agent.service" > "$UNIT"
chmod 0644 "$UNIT"

# Docker: the engine's socket is root:docker 0660, so the service user needs that group, and the agent must start
# after the engine — it offers the docker driver only if the engine answers when it starts. A drop-in keeps the
# unit itself free of Docker for hosts that serve other target kinds.
DROPIN="$UNIT.d/docker.conf"
if [ "$DOCKER" = 1 ] && getent group "$DOCKER_GROUP" >/dev/null 2>&1; then
  install -d -m 0755 "$UNIT.d"
  cat > "$DROPIN" <<DOCKERCONF
# Written by install.sh: the Ferry agent drives the Docker Engine on this host.
[Unit]
Wants=docker.service
After=docker.service

[Service]
# Membership of the socket's group is root-equivalent on this host (docs/security.md).
SupplementaryGroups=$DOCKER_GROUP
DOCKERCONF
  chmod 0644 "$DROPIN"
  say "the service joins group $DOCKER_GROUP for the Docker socket and starts after docker.service"
else
  rm -f "$DROPIN"
  if [ "$DOCKER" = 1 ]; then
    say "warning: no group $DOCKER_GROUP on this host (Docker not installed yet, or its socket has another group): the agent will not offer the docker driver; install Docker and run install.sh again, or pass --docker-group GROUP / --no-docker"
  fi
fi
if [ "$SYSTEMD" = 1 ]; then
  command -v systemctl >/dev/null 2>&1 || die "systemctl not found; pass --no-systemd and start '$BIN run --state-dir $STATE' yourself"
  systemctl daemon-reload
  systemctl enable ferry-agent.service
  # restart, not start: an agent of an earlier version must not keep running, nor import chunks removed below.
  systemctl restart ferry-agent.service
  say "ferry-agent.service enabled and (re)started (journalctl -u ferry-agent -f)"
  prune_chunks
else
  say "unit written to $UNIT (not activated: --no-systemd)"
  # Without systemd this script cannot know whether an agent of an earlier version still runs: its chunks stay
  # unless the caller says none does.
  if [ "$PRUNE" = 1 ]; then
    prune_chunks
  else
    stale="$(stale_chunks | wc -l)"
    [ "$stale" = 0 ] || say "kept $stale chunk(s) of earlier versions in $OPT/chunks (an agent started before may still load them); once none runs, install.sh --no-systemd --prune-chunks removes them"
  fi
fi
