#!/usr/bin/env bash
# Installs the Ferry agent on a Linux host: the single-file agent, a system user, a state directory, enrolment with
# a join string, and a systemd service.
#
#   install.sh --bundle ferry-agent.mjs --join 'ferry-join-v1.…' [--name NAME] [--user ferry-agent]
#              [--docker-group docker | --no-docker] [--prefix DIR] [--no-systemd] [--no-user] [--force]
#
# The join string is a secret: pass it with --join or FERRY_JOIN; it is never written to disk or logged.
# The service reaches the Docker Engine through the socket's group (--docker-group, default docker) and starts
# after docker.service; --no-docker leaves both out. --prefix installs under DIR (for images and tests);
# --no-systemd skips the unit's activation.
# Exit codes: 0 installed, 2 usage or a missing prerequisite, 3 enrolment refused.
set -euo pipefail

BUNDLE="" JOIN="${FERRY_JOIN:-}" NAME="" USER_NAME="ferry-agent" PREFIX="" SYSTEMD=1 CREATE_USER=1 FORCE=0
DOCKER=1 DOCKER_GROUP="docker"

die() { printf 'install.sh: %s\n' "$1" >&2; exit "${2:-2}"; }
say() { printf 'install.sh: %s\n' "$1"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) BUNDLE="${2:?--bundle needs a file}"; shift 2 ;;
    --join) JOIN="${2:?--join needs a join string}"; shift 2 ;;
    --name) NAME="${2:?--name needs a value}"; shift 2 ;;
    --user) USER_NAME="${2:?--user needs a value}"; shift 2 ;;
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --no-systemd) SYSTEMD=0; shift ;;
    --docker-group) DOCKER_GROUP="${2:?--docker-group needs a group}"; DOCKER=1; shift 2 ;;
    --no-docker) DOCKER=0; shift ;;
    --no-user) CREATE_USER=0; shift ;;
    --force) FORCE=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

[ -n "$BUNDLE" ] || die "--bundle is required (build it with: npm run bundle:agent)"
[ -f "$BUNDLE" ] || die "no agent bundle at $BUNDLE"
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

install -d -m 0755 "$OPT" "$(dirname "$BIN")"
install -m 0644 "$BUNDLE" "$OPT/ferry-agent.mjs"
# FERRY_AGENT_NODE_FLAGS (set by the systemd unit) carries node's runtime flags; unquoted on purpose, one word each.
cat > "$BIN.tmp" <<WRAPPER
#!/bin/sh
# shellcheck disable=SC2086
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
  systemctl enable --now ferry-agent.service
  say "ferry-agent.service enabled and started (journalctl -u ferry-agent -f)"
else
  say "unit written to $UNIT (not activated: --no-systemd)"
fi
