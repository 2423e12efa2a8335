// `ferry deploy|deployments|deployment|rollback|status` — putting releases on targets and seeing what runs where.
import { type Command, CommanderError } from "commander";
import type { TaskLockView } from "../domain/deploy/compose-locks.js";
import type { DeploymentView, TargetStatusView, TaskView } from "../domain/deploy/deployment-service.js";
import type { RolloutView } from "../domain/rollout/rollout-service.js";
import { listQuery, type ApiClient } from "./api-client.js";
import { rolloutSummary } from "./rollout-commands.js";
import { note, table, writeOut } from "./format.js";

type Out = (json: boolean, data: unknown, human: () => string) => void;
const collect = (v: string, acc: string[]) => [...acc, v];
const enc = encodeURIComponent;
const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const short = (digest: string) => digest.replace(/^sha256:/, "").slice(0, 12);

function summary(d: DeploymentView): string {
  const what = d.release ? `${d.release.name}@${d.release.version}` : d.action === "route" ? "router operation" : "previous releases";
  const lines = [
    `${d.action === "rollback" ? "Rollback" : d.action === "route" ? "Router task" : "Deployment"} ${d.id}: ${what} to ${d.environment} — ${d.state}`,
    ...(d.override ? [`  gate override by ${d.override.by}: ${d.override.reason} (evidence ${d.override.evidence ?? "-"})`] : []),
    table(
      ["TARGET", "STATE", "IMAGE", "ATTEMPT", "RESULT"],
      d.tasks.map((t) => [t.target.name, t.state, t.images.map((i) => `${i.component}@${short(i.digest)}`).join(","), String(t.attempt), t.code ? `${t.code}: ${t.message ?? ""}` : (t.message ?? "")]),
    ),
  ];
  return lines.join("\n");
}

/** Follows a deployment until every task is final, printing progress events and log lines as they arrive. */
async function follow(client: ApiClient, id: string, human: boolean, timeoutMs: number): Promise<DeploymentView> {
  const seen = new Map<string, number>(); // task → last event seq printed
  const logAt = new Map<string, number>();
  const started = Date.now();
  for (;;) {
    const d = await client.request<DeploymentView>("GET", `/api/v1/deployments/${enc(id)}`);
    if (human) {
      for (const t of d.tasks) {
        for (const e of t.events ?? []) {
          if (e.seq <= (seen.get(t.id) ?? 0)) continue;
          seen.set(t.id, e.seq);
          note(`${t.target.name}: ${e.step}${e.detail ? ` — ${e.detail}` : ""}`);
        }
        if (FINAL.has(t.state) || t.state === "errored" || t.state === "expired") {
          await printLog(client, id, t, logAt, true, "stderr");
        }
      }
    }
    if (FINAL.has(d.state)) return d;
    if (Date.now() - started > timeoutMs) {
      throw new CommanderError(4, "ferry.timeout", `deployment ${id} is still ${d.state} after ${Math.round(timeoutMs / 1000)} s; follow it with: ferry deployment show ${id}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** A --strategy value: JSON when it looks like an object, else a kind's name. */
export function parseStrategyOption(v: string): unknown {
  if (!v.trimStart().startsWith("{")) return v;
  try {
    return JSON.parse(v) as unknown;
  } catch {
    throw new CommanderError(2, "ferry.usage", `--strategy: not valid JSON: ${v.slice(0, 80)}`);
  }
}

const ROLLOUT_FINAL = new Set(["succeeded", "failed", "rolled_back"]);

/** Follows a rollout until it is final (or halted: that waits for an operator), printing each step as it changes. */
async function followRollout(client: ApiClient, id: string, timeoutMs: number): Promise<RolloutView> {
  const started = Date.now();
  const seen = new Map<number, string>();
  for (;;) {
    const r = await client.request<RolloutView>("GET", `/api/v1/rollouts/${enc(id)}`);
    for (const s of r.steps) {
      if (seen.get(s.index) === s.state) continue;
      seen.set(s.index, s.state);
      if (s.state !== "pending") note(`step ${s.index} ${s.name}: ${s.state}`);
    }
    if (ROLLOUT_FINAL.has(r.state) || r.state === "halted") return r;
    if (Date.now() - started > timeoutMs) {
      throw new CommanderError(4, "ferry.timeout", `rollout ${id} is still ${r.state} after ${Math.round(timeoutMs / 1000)} s; follow it with: ferry rollout show ${id}`);
    }
    await new Promise((res) => setTimeout(res, 1000));
  }
}

/**
 * Prints a task's log, control characters escaped. `deployment show --logs` asked for the logs: they are its output,
 * on stdout. While following a deploy (--wait) they are progress, on stderr, so stdout stays the result alone.
 */
async function printLog(client: ApiClient, id: string, t: TaskView, at: Map<string, number>, onlyFailures: boolean, to: "stdout" | "stderr"): Promise<void> {
  if (onlyFailures && t.state === "succeeded") return;
  if (at.has(t.id)) return;
  const r = await client.text(`/api/v1/deployments/${enc(id)}/tasks/${enc(t.id)}/log`);
  at.set(t.id, Number(r.headers.get("x-ferry-log-next") ?? 0));
  if (!r.body) return;
  const text = `--- ${t.target.name} log ---\n${r.body}${r.body.endsWith("\n") ? "" : "\n"}`;
  if (to === "stdout") writeOut(text);
  else note(text.replace(/\n$/, ""));
}

export function deployCommands(program: Command, client: () => ApiClient, print: Out): void {
  program
    .command("deploy <release>")
    .description("deploy a release (name@version or id) to an environment: one signed task per target")
    .requiredOption("--to <env>", "environment")
    .option("--target <name>", "only this target (repeatable)", collect, [])
    .option("--wait", "follow progress until every target is done; exit 1 unless all succeeded", false)
    .option("--timeout <seconds>", "with --wait: give up after this long", "900")
    .option("--idempotency-key <key>", "safe retries from CI: the same key never deploys twice")
    .option("--override <reason>", "into an environment with gates: deploy without a promotion (gate-override role; the reason is recorded and signed)")
    .option("--strategy <kind-or-json>", 'rollout strategy instead of the environment\'s: a kind ("rolling") or JSON (\'{"kind":"rolling","batch":"25%"}\')')
    .option("--json", "print JSON")
    .action(async (release: string, o: { to: string; target: string[]; wait: boolean; timeout: string; idempotencyKey?: string; override?: string; strategy?: string; json?: boolean }) => {
      const body: Record<string, unknown> = { release, environment: o.to };
      if (o.target.length > 0) body["targets"] = o.target;
      if (o.override !== undefined) body["override"] = { reason: o.override };
      if (o.strategy !== undefined) body["strategy"] = parseStrategyOption(o.strategy);
      let d = await client().request<DeploymentView & { rollout?: RolloutView }>("POST", "/api/v1/deployments", body, o.idempotencyKey ? { "idempotency-key": o.idempotencyKey } : {});
      if (d.rollout) {
        // A rollout: its first wave is this deployment; --wait follows the whole rollout.
        let r: RolloutView = d.rollout;
        if (!o.json) note(`rollout ${r.id} started (${r.strategy.kind}, ${r.steps.length} steps); first wave: deployment ${d.id}`);
        if (o.wait) r = await followRollout(client(), r.id, Number(o.timeout) * 1000);
        print(!!o.json, o.wait ? r : d, () => rolloutSummary(r));
        if (o.wait && r.state !== "succeeded") process.exitCode = 1;
        return;
      }
      if (!o.json) note(`deployment ${d.id} queued: ${d.tasks.length} target(s)`);
      if (o.wait) d = await follow(client(), d.id, true, Number(o.timeout) * 1000);
      print(!!o.json, d, () => summary(d));
      if (o.wait && d.state !== "succeeded") process.exitCode = 1;
    });

  program
    .command("rollback")
    .description("put back, on each target, exactly the images it ran before its current ones")
    .requiredOption("--env <env>", "environment")
    .option("--target <name>", "only this target (repeatable)", collect, [])
    .option("--wait", "follow progress until done; exit 1 unless all succeeded", false)
    .option("--timeout <seconds>", "with --wait: give up after this long", "900")
    .option("--override <reason>", "into an environment with gates: roll back without a promotion (gate-override role; recorded and signed)")
    .option("--json", "print JSON")
    .action(async (o: { env: string; target: string[]; wait: boolean; timeout: string; override?: string; json?: boolean }) => {
      const body: Record<string, unknown> = { environment: o.env };
      if (o.target.length > 0) body["targets"] = o.target;
      if (o.override !== undefined) body["override"] = { reason: o.override };
      let d = await client().request<DeploymentView>("POST", "/api/v1/rollbacks", body);
      if (!o.json) note(`rollback ${d.id} queued: ${d.tasks.length} target(s)`);
      if (o.wait) d = await follow(client(), d.id, true, Number(o.timeout) * 1000);
      print(!!o.json, d, () => summary(d));
      if (o.wait && d.state !== "succeeded") process.exitCode = 1;
    });

  program
    .command("maintenance <on|off>")
    .description("maintenance mode on the environment's routed targets: every request answered 503 with the message, or off")
    .requiredOption("--env <env>", "environment")
    .option("--message <text>", "with on: what clients get (1-256 printable ASCII characters, without \" and \\)")
    .option("--target <name>", "only this target (repeatable)", collect, [])
    .option("--wait", "follow until every target's router answered; exit 1 unless all succeeded", false)
    .option("--timeout <seconds>", "with --wait: give up after this long", "300")
    .option("--json", "print JSON")
    .action(async (mode: string, o: { env: string; message?: string; target: string[]; wait: boolean; timeout: string; json?: boolean }) => {
      if (mode !== "on" && mode !== "off") throw new CommanderError(2, "ferry.usage", `maintenance takes on or off, not ${JSON.stringify(mode)}`);
      if (mode === "off" && o.message !== undefined) throw new CommanderError(2, "ferry.usage", "--message goes with maintenance on only");
      const body: Record<string, unknown> = { on: mode === "on" };
      if (o.message !== undefined) body["message"] = o.message;
      if (o.target.length > 0) body["targets"] = o.target;
      let d = await client().request<DeploymentView>("POST", `/api/v1/environments/${enc(o.env)}/maintenance`, body);
      if (!o.json) note(`maintenance ${mode} ${d.id} queued: ${d.tasks.length} target(s)`);
      if (o.wait) d = await follow(client(), d.id, true, Number(o.timeout) * 1000);
      print(!!o.json, d, () => summary(d));
      if (o.wait && d.state !== "succeeded") process.exitCode = 1;
    });

  program
    .command("deployments")
    .description("list deployments, newest first")
    .option("--env <env>", "only this environment")
    .option("--state <state>", "queued, running, succeeded, failed or cancelled")
    .option("--limit <n>", "page size", "50")
    .option("--cursor <cursor>", "next page")
    .option("--json", "print JSON")
    .action(async (o: { env?: string; state?: string; limit: string; cursor?: string; json?: boolean }) => {
      const q = listQuery(o);
      const r = await client().request<{ deployments: DeploymentView[]; nextCursor: string | null }>("GET", `/api/v1/deployments?${q.toString()}`);
      print(!!o.json, r, () =>
        [
          table(
            ["ID", "ACTION", "RELEASE", "ENV", "STATE", "TARGETS", "CREATED", "BY"],
            r.deployments.map((d) => [d.id, d.action, d.release ? `${d.release.name}@${d.release.version}` : "-", d.environment, d.state, String(d.tasks.length), d.createdAt, d.requestedBy]),
          ),
          ...(r.nextCursor ? [`more: --cursor ${r.nextCursor}`] : []),
        ].join("\n"),
      );
    });

  const deployment = program.command("deployment").description("one deployment: its targets, progress and logs");
  deployment
    .command("show <id>")
    .description("per-target state, progress events and logs")
    .option("--logs", "print every task's log", false)
    .option("--json", "print JSON")
    .action(async (id: string, o: { logs: boolean; json?: boolean }) => {
      const c = client();
      const d = await c.request<DeploymentView>("GET", `/api/v1/deployments/${enc(id)}`);
      print(!!o.json, d, () => {
        const parts = [summary(d)];
        for (const t of d.tasks) {
          parts.push("", `${t.target.name} (${t.id}, agent ${t.agentId}):`);
          const earlier = (t.eventsTotal ?? 0) - (t.events?.length ?? 0);
          if (earlier > 0) parts.push(`  … ${earlier} earlier event${earlier === 1 ? "" : "s"} (GET /api/v1/deployments/${d.id}/tasks/${t.id}/events)`);
          for (const e of t.events ?? []) parts.push(`  ${e.at}  ${e.step}${e.detail ? ` — ${e.detail}` : ""}`);
          if (t.details) parts.push(`  details: ${JSON.stringify(t.details)}`);
        }
        return parts.join("\n");
      });
      if (o.logs && !o.json) {
        const at = new Map<string, number>();
        for (const t of d.tasks) await printLog(c, d.id, t, at, false, "stdout");
      }
    });
  deployment
    .command("lock <id>")
    .description("the lock file a compose task wrote on its target, exactly as stored with the deployment (redirect it to a file to keep it)")
    .option("--target <name>", "the target (needed when the deployment has several compose targets)")
    .option("--json", "print JSON: fileName, sha256, text, task and target")
    .action(async (id: string, o: { target?: string; json?: boolean }) => {
      const c = client();
      const d = await c.request<DeploymentView>("GET", `/api/v1/deployments/${enc(id)}`);
      const withLock = d.tasks.filter((t) => t.lockSha256 !== null && (o.target === undefined || t.target.name === o.target));
      if (withLock.length === 0) {
        throw new CommanderError(2, "ferry.usage", `deployment ${d.id} has no task with a lock file${o.target !== undefined ? ` for target ${o.target}` : ""} (only compose targets have one)`);
      }
      if (withLock.length > 1) {
        throw new CommanderError(2, "ferry.usage", `deployment ${d.id} has lock files for ${withLock.map((t) => t.target.name).join(", ")}; name one with --target`);
      }
      const lock = await c.request<TaskLockView>("GET", `/api/v1/deployments/${enc(d.id)}/tasks/${enc(withLock[0]!.id)}/lock`);
      print(!!o.json, lock, () => lock.text.replace(/\n$/, ""));
    });
  deployment
    .command("retry <id>")
    .description("deploy again to the targets whose tasks did not succeed")
    .option("--wait", "follow progress until done", false)
    .option("--override <reason>", "into an environment with gates: retry without a promotion (gate-override role; recorded and signed)")
    .option("--json", "print JSON")
    .action(async (id: string, o: { wait: boolean; override?: string; json?: boolean }) => {
      let d = await client().request<DeploymentView>("POST", `/api/v1/deployments/${enc(id)}/retry`, o.override !== undefined ? { override: { reason: o.override } } : {});
      if (o.wait) d = await follow(client(), d.id, true, 900_000);
      print(!!o.json, d, () => summary(d));
      if (o.wait && d.state !== "succeeded") process.exitCode = 1;
    });
  deployment
    .command("cancel <id>")
    .description("cancel the tasks no agent has picked up yet")
    .option("--json", "print JSON")
    .action(async (id: string, o: { json?: boolean }) => {
      const d = await client().request<DeploymentView>("POST", `/api/v1/deployments/${enc(id)}/cancel`, {});
      print(!!o.json, d, () => summary(d));
    });

  program
    .command("status")
    .description("what is deployed where, from the targets' stickers, with drift marked")
    .option("--env <env>", "only this environment")
    .option("--json", "print JSON")
    .action(async (o: { env?: string; json?: boolean }) => {
      const r = await client().request<{ targets: TargetStatusView[] }>("GET", `/api/v1/status${o.env ? `?environment=${enc(o.env)}` : ""}`);
      print(!!o.json, r, () => {
        const rows = r.targets.map((t) => {
          const images = t.deployed ? t.deployed.images.map((i) => `${i.component}@${short(i.digest)}`).join(",") : "-";
          const mark = t.sync === "drift" ? "DRIFT" : t.sync;
          return [t.environment, t.target, t.deployed?.release ?? "-", images, mark, t.activeTask ? `${t.activeTask.state} ${t.activeTask.deploymentId}` : "", t.drift.join("; ")];
        });
        return table(["ENV", "TARGET", "RELEASE", "IMAGES", "SYNC", "ACTIVE", "DRIFT"], rows);
      });
    });

  const keys = program.command("signing-key").description("the task-signing keys agents trust");
  type KeysView = { activeKeyId: string; keys: { keyId: string; algorithm: string; notAfterMs: number; publicKeyPem: string }[] };
  const keysHuman = (k: KeysView) =>
    table(
      ["KEY", "ALGORITHM", "ROLE", "TRUSTED UNTIL"],
      k.keys.map((x) => [x.keyId, x.algorithm, x.keyId === k.activeKeyId ? "signing" : "retiring", x.notAfterMs ? new Date(x.notAfterMs).toISOString() : "-"]),
    );
  keys
    .command("list")
    .description("the keys agents trust now (two during a rotation)")
    .option("--json", "print JSON (includes the public keys, PEM)")
    .action(async (o: { json?: boolean }) => {
      const k = await client().request<KeysView>("GET", "/api/v1/task-signing-keys");
      print(!!o.json, k, () => keysHuman(k));
    });
  keys
    .command("rotate")
    .description("sign with a new key from now on; the previous key keeps verifying for the overlap")
    .option("--overlap <duration>", "how long the previous key stays trusted (at least the task TTL, at most 30d; default 24h)")
    .option("--emergency", "retire the previous key at once (suspected compromise): undelivered tasks are re-signed, see docs/security.md")
    .option("--json", "print JSON")
    .action(async (o: { overlap?: string; emergency?: boolean; json?: boolean }) => {
      const body: { overlap?: string; emergency?: boolean } = {};
      if (o.overlap !== undefined) body.overlap = o.overlap;
      if (o.emergency) body.emergency = true;
      const k = await client().request<KeysView & { emergency?: { warning: string } }>("POST", "/api/v1/task-signing-keys/rotate", body);
      if (k.emergency) process.stderr.write(`WARNING: ${k.emergency.warning}\n`);
      print(!!o.json, k, () => `rotated: ${k.activeKeyId} signs new tasks\n${keysHuman(k)}`);
    });
}
