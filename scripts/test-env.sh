#!/usr/bin/env bash
# Prepares this machine for the test suite. Safe to run repeatedly.
#  - Debian packages the suites run for real: docker-registry (an OCI registry; each suite starts its own instance
#    on 127.0.0.1 with its own config) and apache2-utils (htpasswd, for the registry's basic-auth realm).
#  - PostgreSQL on 127.0.0.1:5432 with a `test` database (used when FERRY_TEST_DATABASE_URL is set).
#  - Debian's docker.io, docker-compose, busybox-static (the test images are built from it: no public registry is
#    reachable), openssh-server (the SSH suites start their own sshd on a loopback port) and haproxy (the host
#    router the rollout suites drive; each starts its own instance on loopback ports, never the system service).
#  - Debian's sudo and three login users for the ssh driver's sudo mode (see the sudo section below).
#  - Debian's chromium, which the console's browser suite drives through playwright-core.
#  - The project's own Docker Engine on unix:///run/ferry-test/docker.sock (data root /var/lib/ferry-test-docker),
#    separate from any system Docker: no bridge, no iptables rules; test containers use host networking and listen
#    on loopback. The suites find it at that path (FERRY_TEST_DOCKER_SOCKET overrides it); stop it with
#    scripts/docker-test-env-stop.sh.
# Everything it starts listens on loopback only.
set -euo pipefail

log() { printf 'test-env: %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
# The static build specifically: the test images contain nothing but this one binary.
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
# The host router of the rollout suites (each starts its own haproxy on loopback ports with a socket in a temp dir).
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
# The console's browser suite drives Debian's Chromium through playwright-core (no browser download).
[ -x /usr/bin/chromium ] || need+=(chromium)
# The ssh driver's sudo mode is tested against Debian's sudo (set up below: test users and their sudoers rules).
command -v sudo >/dev/null 2>&1 || [ -x /usr/bin/sudo ] || need+=(sudo)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  # Package scripts must not start services (a system dockerd would create a bridge and iptables rules; sshd would
  # listen on every interface). Debian's invoke-rc.d asks policy-rc.d; add one for the install if there is none.
  policy_added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod 755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || install_failed=1
  [ -n "$policy_added" ] && as_root rm -f /usr/sbin/policy-rc.d
  if [ -n "${install_failed:-}" ]; then log "installing ${need[*]} failed"; exit 1; fi
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

# ---------------------------------------------------------------------------------------------------------------
# The project's Docker Engine. Paths are fixed so CI and the suites agree without exporting anything
# (test/helpers/docker.ts reads the same default socket).
DOCKER_RUN_DIR=/run/ferry-test
DOCKER_SOCKET="$DOCKER_RUN_DIR/docker.sock"
DOCKER_PIDFILE="$DOCKER_RUN_DIR/docker.pid"
DOCKER_DATA_ROOT=/var/lib/ferry-test-docker
DOCKER_LOG=/var/log/ferry-test-dockerd.log
docker_cli=$(command -v docker || true)

docker_answers() { [ -n "$docker_cli" ] && [ -S "$DOCKER_SOCKET" ] && as_root "$docker_cli" -H "unix://$DOCKER_SOCKET" version >/dev/null 2>&1; }

loud() {
  printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n'
  printf 'test-env: %s\n' "$@"
  printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n'
}

start_dockerd() {
  if ! command -v dockerd >/dev/null 2>&1 || [ -z "$docker_cli" ]; then
    loud "dockerd or the docker CLI is not installed: the Docker suites will skip (and fail under CI=true)"
    return 0
  fi
  as_root mkdir -p "$DOCKER_RUN_DIR" "$DOCKER_DATA_ROOT"
  as_root chmod 711 "$DOCKER_RUN_DIR"
  # A live dockerd from an earlier run that does not answer yet is still starting: wait for it, do not start another.
  local pid=""
  if [ -f "$DOCKER_PIDFILE" ]; then
    pid=$(cat "$DOCKER_PIDFILE" 2>/dev/null || true)
    if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "dockerd.*$DOCKER_DATA_ROOT"; then
      log "dockerd (pid $pid) is running but not answering yet; waiting"
    else
      as_root rm -f "$DOCKER_PIDFILE"
      pid=""
    fi
  fi
  if [ -z "$pid" ]; then
    log "starting dockerd on unix://$DOCKER_SOCKET (log: $DOCKER_LOG)"
    # No bridge and no iptables/ip6tables rules: containers run with host networking and this engine must not touch
    # the machine's network. Its own data, exec root and pidfile keep it apart from a system Docker. setsid +
    # nohup detach it from this script so it outlives it; it is stopped by scripts/docker-test-env-stop.sh.
    as_root setsid nohup dockerd \
      --host "unix://$DOCKER_SOCKET" \
      --data-root "$DOCKER_DATA_ROOT" \
      --exec-root "$DOCKER_RUN_DIR/exec" \
      --pidfile "$DOCKER_PIDFILE" \
      --bridge=none --iptables=false --ip6tables=false \
      >>"$DOCKER_LOG" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 60); do
    docker_answers && return 0
    sleep 1
  done
  loud "dockerd did not answer on unix://$DOCKER_SOCKET within 60 s: the Docker suites will skip (and fail under CI=true)" \
    "last lines of $DOCKER_LOG:"
  tail -n 20 "$DOCKER_LOG" 2>/dev/null || true
}

if docker_answers; then
  log "dockerd already answers on unix://$DOCKER_SOCKET"
else
  start_dockerd
fi
if docker_answers; then
  log "Docker Engine $(as_root "$docker_cli" -H "unix://$DOCKER_SOCKET" version --format '{{.Server.Version}}' 2>/dev/null) ready on unix://$DOCKER_SOCKET"
fi

# ---------------------------------------------------------------------------------------------------------------
# The ssh driver's sudo mode (docs/drivers/ssh.md#sudo). The suites log in to their own sshd as these users, none of
# them in the docker group, none with a password (`*`: not locked, so sshd without PAM accepts a key for them):
#   ferry-sudo     the docker-mode rule of docs/drivers/ssh.md, word for word but for the test engine's socket: the
#                  engine through `docker system dial-stdio`, and the sticker file's four commands
#   ferry-script   the script-mode rule: `sh` (scripts run as root) and the sticker's commands
#   ferry-nosudo   no rule at all: `sudo -n` refuses everything it is asked
# The sticker rules name the default sticker directory, /var/lib/ferry/stickers; the suites use that directory and
# remove their own files from it.
SUDOERS_FILE=/etc/sudoers.d/ferry-test
sudo_users() {
  local u
  for u in ferry-sudo ferry-script ferry-nosudo; do
    if ! id "$u" >/dev/null 2>&1; then
      as_root useradd --create-home --shell /bin/sh --password '*' "$u"
      log "created the login user $u"
    fi
  done
  # A rule names the binary that sudo runs: the command's name looked up in sudo's secure_path (this machine may
  # have, say, a /usr/local/bin/docker ahead of /usr/bin/docker).
  local docker mkdir tee mv cat sh rules
  for c in docker mkdir tee mv cat sh; do
    printf -v "$c" '%s' "$(as_root sudo -n sh -c "command -v $c")"
  done
  rules=$(cat <<SUDOERS
# Written by scripts/test-env.sh for the ssh driver's sudo tests.
Cmnd_Alias FERRY_ENGINE = $docker -H unix\\:///run/ferry-test/docker.sock system dial-stdio
Cmnd_Alias FERRY_STICKER = $mkdir -p /var/lib/ferry/stickers, \\
  $tee ^/var/lib/ferry/stickers/[A-Za-z0-9_-][A-Za-z0-9_.-]*[.]json[.]ferry-tmp\$, \\
  $mv ^-f /var/lib/ferry/stickers/[A-Za-z0-9_-][A-Za-z0-9_.-]*[.]json[.]ferry-tmp /var/lib/ferry/stickers/[A-Za-z0-9_-][A-Za-z0-9_.-]*[.]json\$, \\
  $cat ^/var/lib/ferry/stickers/[A-Za-z0-9_-][A-Za-z0-9_.-]*[.]json\$
ferry-sudo ALL=(root) NOPASSWD: FERRY_ENGINE, FERRY_STICKER
ferry-script ALL=(root) NOPASSWD: $sh, FERRY_STICKER
SUDOERS
)
  if [ "$(as_root cat "$SUDOERS_FILE" 2>/dev/null || true)" != "$rules" ]; then
    local tmp
    tmp=$(mktemp)
    printf '%s\n' "$rules" >"$tmp"
    # Checked before it is put in place: a broken sudoers file would lock sudo for everyone.
    if as_root visudo -cq -f "$tmp"; then
      as_root install -m 0440 -o root -g root "$tmp" "$SUDOERS_FILE"
      log "wrote $SUDOERS_FILE"
    else
      loud "visudo refused the rules for $SUDOERS_FILE: the ssh sudo tests will fail"
    fi
    rm -f "$tmp"
  fi
}
if command -v sudo >/dev/null 2>&1 && command -v visudo >/dev/null 2>&1; then
  sudo_users
  log "sudo $(sudo -V | head -n 1 | awk '{print $3}') ready for the ssh sudo tests"
else
  loud "sudo is not installed: the ssh driver's sudo tests will skip (and fail under CI=true)"
fi
