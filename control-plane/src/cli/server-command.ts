// `ferry server`: starts the control plane in this process and runs until SIGINT/SIGTERM.
import type { Command } from "commander";
import { resolveConfig, type RawConfig } from "../config/config.js";
import { createLogger } from "../logging.js";
import { startControlPlane } from "../main.js";

export function serverCommand(program: Command): void {
  program
    .command("server")
    .description("run the control plane (API + console, agent listener, enrolment listener)")
    .option("--config <file>", "JSON config file (default <data-dir>/ferry.json when present)")
    .option("--data-dir <dir>", "state directory: CA, embedded database, admin token (default ./.ferry)")
    .option("--ca-dir <dir>", "fleet CA directory (default <data-dir>/ca); replicas sharing a database share it")
    .option("--database-url <url>", "PostgreSQL server URL; without it the embedded PGlite database in the data dir is used")
    .option("--api-listen <host:port>", "API and console (default 127.0.0.1:7070)")
    .option("--api-tls <mode>", "API over HTTPS: auto (certificate from Ferry's CA for the advertised names) or off (default: off on loopback, auto elsewhere)")
    .option("--api-tls-cert <file>", "API over HTTPS with your certificate chain (PEM); with --api-tls-key; re-read when it changes")
    .option("--api-tls-key <file>", "private key (PEM) for --api-tls-cert")
    .option("--agent-listen <host:port>", "agent mTLS listener (default 127.0.0.1:7071)")
    .option("--enrol-listen <host:port>", "enrolment TLS listener (default 127.0.0.1:7072)")
    .option("--advertise-host <host>", "host name agents use to reach this server (put in join strings)")
    .option("--advertise-agent <host:port>", "agent endpoint given to agents at enrolment")
    .option("--advertise-enrol <host:port>", "enrolment endpoint put in join strings")
    .option("--tls-hosts <list>", "extra comma-separated DNS names/IPs for the server certificate")
    .option("--heartbeat-interval <duration>", "heartbeat interval dictated to agents (default 15s)")
    .option("--liveness-grace <duration>", "grace added to 3 × interval before an agent is offline (default: one interval)")
    .option("--last-seen-flush <duration>", "minimum time between two last-heartbeat writes per agent (default min(30s, 2 × interval))")
    .option("--cert-lifetime <duration>", "agent certificate lifetime (default 24h)")
    .option("--enrol-rate <n>", "enrolments admitted per second (default 20)")
    .option("--enrol-burst <n>", "enrolments admitted at once (default 100)")
    .option("--stream-rate <n>", "new agent streams admitted per second (default 1000)")
    .option("--stream-burst <n>", "new agent streams admitted at once (default 2000)")
    .option("--max-message-bytes <n>", "largest agent message accepted (default 1 MiB)")
    .option("--max-body-bytes <n>", "largest API request body accepted (default 1 MiB)")
    .option("--log-level <level>", "fatal|error|warn|info|debug|trace (default info)")
    .option("--log-format <format>", "json|pretty|auto (default auto: pretty on a terminal)")
    .option("--registry-credentials <file>", "JSON file of registry credentials by name (mode 0600)")
    .option("--registry-timeout <duration>", "time allowed for one registry request (default 10s)")
    .option("--insecure-registries <list>", "comma-separated registries reached over plain HTTP (loopback always is)")
    .option("--registry-internal-hosts <list>", "comma-separated loopback/link-local hosts a registry may redirect to or name as token realm")
    .option("--task-signing-dir <dir>", "task-signing keyring directory (default <data-dir>/task-signing)")
    .option("--task-ttl <duration>", "how long a queued task stays valid (default 1h)")
    .option("--task-ack-timeout <duration>", "how long an offered task waits for the agent's answer (default 30s)")
    .option("--task-lease <duration>", "lease of a running task, renewed by the agent (default max(1m, 4 × heartbeat interval))")
    .option("--task-sweep-interval <duration>", "how often leases are checked and missed task notices caught up (default 2s)")
    .option("--evidence-key-dir <dir>", "evidence signing key directory (default <data-dir>/evidence-key)")
    .option("--promotion-ttl <duration>", "how long a promotion may wait for its gates (default 7d)")
    .option("--audit-checkpoint-interval <duration>", "how often the audit head is signed into a checkpoint when it moved (default 10s)")
    .option("--webhook-allow <list>", "comma-separated CIDRs or host names webhooks may reach although private or loopback (default none)")
    .option("--enrol-peer-rate <n>", "enrolments admitted per second from one peer address (default 2)")
    .option("--enrol-peer-burst <n>", "enrolments admitted at once from one peer address (default 20)")
    .option("--replica-id <id>", "name of this replica in logs and the fleet (default host-pid)")
    .option("--json", "when ready, print one JSON line on stdout (API address, ports, CA fingerprint, admin token on first start) instead of the banner")
    .action(async (opts: RawConfig & { json?: boolean }) => {
      const { json, ...flags } = opts;
      const cfg = resolveConfig(flags);
      const log = createLogger({ level: cfg.logLevel, format: cfg.logFormat });
      const cp = await startControlPlane(cfg, log);
      if (json) {
        process.stdout.write(
          `${JSON.stringify({ api: cp.api, agentPort: cp.agentPort, enrolPort: cp.enrolPort, caFingerprint: cp.caFingerprint, adminTokenFile: cp.adminTokenFile, adminToken: cp.newAdminSecret })}\n`,
        );
      }
      const lines = [
        "",
        `Ferry control plane is running.`,
        `  API and console     ${cp.api}${cp.apiTls === "ferry-ca" ? " (certificate from the fleet CA: ferry --ca <ca-dir>/ca.crt, or --ca-fingerprint below)" : cp.apiTls === "operator" ? " (your certificate)" : ""}`,
        `  agent listener      port ${cp.agentPort} (mTLS)`,
        `  enrolment listener  port ${cp.enrolPort} (TLS)`,
        `  fleet CA            ${cp.caFingerprint}`,
      ];
      // The secret goes to the file only. Shown on a terminal, never into a pipe or a log collector: stderr of a
      // service is usually kept somewhere others can read.
      if (cp.newAdminSecret && process.stderr.isTTY) {
        lines.push(
          "",
          "First start: an admin API token was created. It is shown once here (this is a terminal) and kept in",
          `  ${cp.adminTokenFile} (mode 0600):`,
          "",
          `  ${cp.newAdminSecret}`,
          "",
          `Console: ${cp.api}/#token=${cp.newAdminSecret}`,
        );
      } else if (cp.newAdminSecret) {
        lines.push("", `First start: an admin API token was created and written to ${cp.adminTokenFile} (mode 0600) only.`);
      } else if (cp.adminTokenFile) {
        lines.push(`  admin token file    ${cp.adminTokenFile}`);
      }
      lines.push("", "Enrol an agent:  ferry env create dev && ferry token create --env dev", "");
      if (!json) process.stderr.write(`${lines.join("\n")}\n`);
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        log.info({ signal }, "stopping");
        cp.stop().then(
          () => process.exit(0),
          (err: unknown) => {
            log.error({ err }, "error while stopping");
            process.exit(1);
          },
        );
      };
      process.on("SIGINT", () => stop("SIGINT"));
      process.on("SIGTERM", () => stop("SIGTERM"));
    });
}
