#!/usr/bin/env bash
# Stops the test Docker Engine that scripts/test-env.sh started (unix:///run/ferry-test/docker.sock), by its pidfile.
# Its containers stop with it; its data root (/var/lib/ferry-test-docker) is kept, so the next start is quick.
# Pass --purge to delete the data root as well. Touches no other dockerd.
set -euo pipefail

DOCKER_RUN_DIR=/run/ferry-test
DOCKER_PIDFILE="$DOCKER_RUN_DIR/docker.pid"
DOCKER_DATA_ROOT=/var/lib/ferry-test-docker

log() { printf 'docker-test-env-stop: %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

purge=""
[ "${1:-}" = "--purge" ] && purge=1

pid=$(cat "$DOCKER_PIDFILE" 2>/dev/null || true)
# The pidfile may be stale and its PID reused: only signal a dockerd serving this data root.
if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "dockerd.*$DOCKER_DATA_ROOT"; then
  log "stopping dockerd (pid $pid)"
  as_root kill -TERM "$pid"
  # dockerd gives containers up to 15 s to stop, then shuts down its containerd.
  for _ in $(seq 1 60); do
    [ -d "/proc/$pid" ] || break
    sleep 0.5
  done
  if [ -d "/proc/$pid" ]; then
    log "dockerd (pid $pid) did not exit within 30 s; sending SIGKILL"
    as_root kill -KILL "$pid" || true
  fi
  log "stopped"
else
  log "no test dockerd is running"
fi
as_root rm -f "$DOCKER_PIDFILE"

if [ -n "$purge" ]; then
  # dockerd leaves its default network namespace mounted under the exec root (and a crash may leave layers mounted
  # under the data root); rm would fail on them half-way, so unmount what is still mounted there first.
  { grep -oE " ($DOCKER_DATA_ROOT|$DOCKER_RUN_DIR/exec)[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do as_root umount "$m" || true; done
  as_root rm -rf "$DOCKER_DATA_ROOT" "$DOCKER_RUN_DIR/exec"
  log "removed $DOCKER_DATA_ROOT"
fi
