// The `ferry` command tree, built without running it (main.ts parses argv; tests walk the tree). Every command
// prints for people by default and JSON with --json; every piece of text that came from an agent or a user goes
// through the terminal-safe writers in format.ts.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import type { AgentView, JoinTokenView } from "../domain/fleet/fleet-service.js";
import type { ChainVerdict } from "../domain/audit/audit-log.js";
import { ApiClient, resolveClient } from "./api-client.js";
import { ago, out, outJson, table } from "./format.js";
import { catalogCommands } from "./catalog-commands.js";
import { deployCommands } from "./deploy-commands.js";
import { freezeCommands, promotionCommands, webhookCommands } from "./promotion-commands.js";
import { serverCommand } from "./server-command.js";
import { storeCommand } from "./store-command.js";
import { adminTokenCommand } from "./admin-token-command.js";

export function buildProgram(): Command {
  const program = new Command("ferry")
    .description("Ferry — release orchestration for container estates that do not run on Kubernetes")
    .version(process.env["npm_package_version"] ?? "0.1.0")
    .option("--url <url>", "control plane API (env FERRY_URL; default http://127.0.0.1:7070)")
    .option("--token <token>", "API token (env FERRY_TOKEN; default: <data-dir>/admin-token when present)")
    .option("--ca <file>", "for https:// URLs: PEM file of the CA to trust, e.g. the fleet CA's ca.crt (env FERRY_CA)")
    .option("--ca-fingerprint <sha256:…>", "for https:// URLs: trust the fleet CA with this fingerprint, as printed by 'ferry server' (env FERRY_CA_FINGERPRINT)")
    .showHelpAfterError()
    .exitOverride();

  function client(): ApiClient {
    const o = program.opts<{ url?: string; token?: string; ca?: string; caFingerprint?: string }>();
    const c = resolveClient(o);
    return new ApiClient(c.url, c.token, c.trust);
  }

  function print(json: boolean, data: unknown, human: () => string): void {
    if (json) outJson(data);
    else out(human());
  }

  const collect = (v: string, acc: string[]) => [...acc, v];

  serverCommand(program);
  storeCommand(program);
  adminTokenCommand(program, print);
  catalogCommands(program, client, print);
  deployCommands(program, client, print);
  promotionCommands(program, client, print);
  webhookCommands(program, client, print);
  freezeCommands(program, client, print);

  const token = program.command("token").description("join tokens (new agents enrol with them) and API tokens (people and CI)");
  token
    .command("create")
    .description("with --env: a join token for new agents; with --subject and --role: an API token")
    .option("--env <name>", "join token: environment the agent will belong to")
    .option("--ttl <duration>", "time to live (join tokens default to 30m; API tokens do not expire unless given)")
    .option("--uses <n>", "join token: how many agents may enrol with it", "1")
    .option("--label <key=value>", "join token: label for the agents that enrol (repeatable)", collect, [])
    .option("--subject <name>", "API token: who it stands for (approvals are attributed to it)")
    .option("--role <role>", "API token: admin, release-manager, approver, deployer, gate-override or viewer (repeatable)", collect, [])
    .option("--description <text>", "API token: what it is for")
    .option("--json", "print JSON")
    .action(async (o: { env?: string; ttl?: string; uses: string; label: string[]; subject?: string; role: string[]; description?: string; json?: boolean }) => {
      if (o.env && o.subject) throw new CommanderError(2, "ferry.usage", "give --env (join token) or --subject (API token), not both");
      if (o.subject) {
        if (o.role.length === 0) throw new CommanderError(2, "ferry.usage", "--role: an API token needs at least one role");
        const body: Record<string, unknown> = { subject: o.subject, roles: o.role };
        if (o.ttl) body["ttl"] = o.ttl;
        if (o.description) body["description"] = o.description;
        const t = await client().request<{ id: string; subject: string; roles: string[]; secret: string; expiresAt: string | null }>("POST", "/api/v1/api-tokens", body);
        print(!!o.json, t, () =>
          [
            `API token ${t.id} for ${t.subject} (${t.roles.join(", ")})${t.expiresAt ? `, expires ${t.expiresAt}` : ""}:`,
            "",
            `  ${t.secret}`,
            "",
            "It is shown once. Use it with FERRY_TOKEN or --token.",
          ].join("\n"),
        );
        return;
      }
      if (!o.env) throw new CommanderError(2, "ferry.usage", "give --env NAME for a join token, or --subject and --role for an API token");
      const uses = Number(o.uses);
      if (!Number.isInteger(uses)) throw new CommanderError(2, "ferry.usage", `--uses: "${o.uses}" is not a whole number`);
      const labels: Record<string, string> = {};
      for (const pair of o.label) {
        const i = pair.indexOf("=");
        if (i <= 0) throw new CommanderError(2, "ferry.usage", `--label: "${pair}" is not key=value`);
        labels[pair.slice(0, i)] = pair.slice(i + 1);
      }
      const t = await client().request<JoinTokenView & { joinString: string }>("POST", "/api/v1/join-tokens", {
        environment: o.env,
        ttl: o.ttl ?? "30m",
        uses,
        labels,
      });
      print(!!o.json, t, () =>
        [
          `Join token ${t.id} for environment ${t.environment} (${t.usesAllowed} use${t.usesAllowed === 1 ? "" : "s"}, expires ${t.expiresAt}).`,
          "On the new host, run:",
          "",
          `  ferry-agent enrol --join '${t.joinString}' --state-dir /var/lib/ferry-agent`,
          "",
          "The join string is a secret: it is shown once.",
        ].join("\n"),
      );
    });
  token
    .command("list")
    .description("list join tokens, or API tokens with --api")
    .option("--api", "list API tokens instead")
    .option("--json", "print JSON")
    .action(async (o: { api?: boolean; json?: boolean }) => {
      if (o.api) {
        const r = await client().request<{ apiTokens: Array<{ id: string; subject: string; roles: string[]; expiresAt: string | null; revokedAt: string | null }> }>("GET", "/api/v1/api-tokens");
        print(!!o.json, r.apiTokens, () =>
          table(["ID", "SUBJECT", "ROLES", "EXPIRES", "STATE"], r.apiTokens.map((t) => [t.id, t.subject, t.roles.join(","), t.expiresAt ?? "never", t.revokedAt ? "revoked" : "active"])),
        );
        return;
      }
      const r = await client().request<{ joinTokens: JoinTokenView[] }>("GET", "/api/v1/join-tokens");
      print(!!o.json, r.joinTokens, () =>
        table(
          ["ID", "ENVIRONMENT", "USES", "EXPIRES", "STATE"],
          r.joinTokens.map((t) => [
            t.id,
            t.environment,
            `${t.usesCount}/${t.usesAllowed}`,
            t.expiresAt,
            t.revokedAt ? "revoked" : Date.parse(t.expiresAt) < Date.now() ? "expired" : t.usesCount >= t.usesAllowed ? "used" : "active",
          ]),
        ),
      );
    });
  token
    .command("revoke <id>")
    .description("revoke a join token (jt_…) or an API token (tok_…)")
    .option("--json", "print JSON")
    .action(async (id: string, o: { json?: boolean }) => {
      const path = id.startsWith("tok_") ? "api-tokens" : id.startsWith("jt_") ? "join-tokens" : null;
      if (!path) throw new CommanderError(2, "ferry.usage", `"${id}" is neither a join token id (jt_…) nor an API token id (tok_…)`);
      const t = await client().request<{ id: string }>("POST", `/api/v1/${path}/${encodeURIComponent(id)}/revoke`);
      print(!!o.json, t, () => `Token ${t.id} revoked.`);
    });

  program
    .command("agents")
    .description("list the fleet")
    .option("--env <name>", "only this environment")
    .addOption(new Option("--status <status>", "only agents in this state").choices(["online", "offline", "revoked"]))
    .option("--json", "print JSON")
    .action(async (o: { env?: string; status?: string; json?: boolean }) => {
      const q = new URLSearchParams();
      if (o.env) q.set("environment", o.env);
      if (o.status) q.set("status", o.status);
      const r = await client().request<{ agents: AgentView[] }>("GET", `/api/v1/agents${q.size ? `?${q.toString()}` : ""}`);
      print(!!o.json, r.agents, () =>
        r.agents.length === 0
          ? "No agents. Create a join token with: ferry token create --env <name>"
          : table(
              ["ID", "NAME", "ENV", "STATUS", "HOST", "VERSION", "LAST HEARTBEAT", "SKEW", "CERT EXPIRES"],
              r.agents.map((a) => [
                a.id,
                a.name,
                a.environment,
                a.status,
                a.facts.hostname ?? "",
                a.facts.agentVersion ?? "",
                ago(a.lastHeartbeatAt),
                a.clockSkewMs === null ? "-" : `${a.clockSkewMs}ms`,
                a.certificate.notAfter ?? "-",
              ]),
            ),
      );
    });

  const agent = program.command("agent").description("one agent");
  agent
    .command("show <id>")
    .description("show an agent")
    .option("--json", "print JSON")
    .action(async (id: string, o: { json?: boolean }) => {
      const a = await client().request<AgentView>("GET", `/api/v1/agents/${encodeURIComponent(id)}`);
      print(!!o.json, a, () =>
        [
          `${a.name} (${a.id})`,
          `  environment     ${a.environment}`,
          `  status          ${a.status}${a.connected ? ", connected" : ""}`,
          `  labels          ${Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(", ") || "-"}`,
          `  host            ${a.facts.hostname ?? "-"} ${a.facts.os ?? ""}/${a.facts.arch ?? ""} ${a.facts.osRelease ?? ""}`,
          `  agent version   ${a.facts.agentVersion ?? "-"}`,
          `  drivers         ${(a.facts.drivers ?? []).join(", ") || "-"}`,
          `  last heartbeat  ${a.lastHeartbeatAt ?? "never"} (${ago(a.lastHeartbeatAt)})`,
          `  clock skew      ${a.clockSkewMs === null ? "-" : `${a.clockSkewMs} ms`}`,
          `  certificate     serial ${a.certificate.serial ?? "-"}, expires ${a.certificate.notAfter ?? "-"}`,
          `  enrolled        ${a.enrolledAt}`,
          ...(a.revokedAt ? [`  revoked         ${a.revokedAt}${a.revokeReason ? `: ${a.revokeReason}` : ""}`] : []),
        ].join("\n"),
      );
    });
  agent
    .command("revoke <id>")
    .description("revoke an agent: its certificates stop working on every replica and its live stream closes")
    .option("--reason <text>", "why (recorded in the audit log)", "")
    .option("--json", "print JSON")
    .action(async (id: string, o: { reason: string; json?: boolean }) => {
      const a = await client().request<AgentView>("POST", `/api/v1/agents/${encodeURIComponent(id)}/revoke`, { reason: o.reason });
      print(!!o.json, a, () => `Agent ${a.id} (${a.name}) revoked.`);
    });

  program
    .command("cert")
    .description("certificates")
    .command("revoke <serial>")
    .description("revoke one certificate by serial (the agent keeps working once it has renewed with a new key)")
    .option("--reason <text>", "why (recorded in the audit log)", "")
    .option("--json", "print JSON")
    .action(async (serial: string, o: { reason: string; json?: boolean }) => {
      const r = await client().request<{ serial: string }>("POST", `/api/v1/certificates/${encodeURIComponent(serial)}/revoke`, { reason: o.reason });
      print(!!o.json, r, () => `Certificate ${r.serial} revoked.`);
    });

  const auditCmd = program.command("audit").description("the audit log");
  auditCmd
    .command("verify")
    .description("walk the hash chain, check it against its signed checkpoints and evidence packets, and name the first broken record")
    .option("--anchor <file>", "remember the head verified here, and next time check the chain still holds it (a witness outside the database)")
    .option("--json", "print JSON")
    .action(async (o: { anchor?: string; json?: boolean }) => {
      let witness: { seq: number; hash: string } | null = null;
      if (o.anchor && existsSync(o.anchor)) {
        try {
          const w = JSON.parse(readFileSync(o.anchor, "utf8")) as { seq?: unknown; hash?: unknown };
          if (typeof w.seq !== "number" || typeof w.hash !== "string" || !/^[0-9a-f]{64}$/.test(w.hash)) throw new Error("expected {\"seq\": N, \"hash\": \"<64 hex>\"}");
          witness = { seq: w.seq, hash: w.hash };
        } catch (err) {
          throw new CommanderError(2, "ferry.usage", `--anchor: ${o.anchor}: ${(err as Error).message}`);
        }
      }
      const q = witness ? `?anchorSeq=${witness.seq}&anchorHash=${witness.hash}` : "";
      const v = await client().request<ChainVerdict>("GET", `/api/v1/audit/verify${q}`);
      print(!!o.json, v, () =>
        v.ok
          ? `Audit log intact: ${v.records} records, head ${v.head}` +
            (v.anchors ? `; matches ${v.anchors.checkpoints} signed checkpoint(s) and ${v.anchors.evidence} evidence packet(s)${witness ? ` and the head seen before (record ${witness.seq})` : ""}.` : ".")
          : `Audit log BROKEN at record ${v.brokenAt}: ${v.reason}`,
      );
      if (!v.ok) {
        process.exitCode = 1;
        return;
      }
      // Only a verified head is remembered; a broken chain leaves the old witness in place.
      if (o.anchor && v.records > 0) writeFileSync(o.anchor, `${JSON.stringify({ seq: v.records, hash: v.head })}\n`);
    });
  auditCmd
    .command("checkpoint")
    .description("sign a checkpoint of the audit head now (the server signs one every interval anyway)")
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      const r = await client().request<{ checkpoint: { seq: number; hash: string } | null }>("POST", "/api/v1/audit/checkpoints");
      print(!!o.json, r, () => (r.checkpoint ? `Checkpoint signed: record ${r.checkpoint.seq}, ${r.checkpoint.hash}.` : "Nothing new to sign: the newest checkpoint already covers the head."));
    });

  return program;
}
