// `ferry env|target|component|release` — the estate model and releases. Every command has human output and --json.
import { readFileSync } from "node:fs";
import { type Command, CommanderError } from "commander";
import { setTimeout as sleep } from "node:timers/promises";
import type { ComponentView, EnvironmentView, ReleaseView, TargetView } from "../domain/catalog/catalog-service.js";
import { MAX_TASK_LOG_BYTES } from "../domain/deploy/agent-input-limits.js";
import { MAX_CHECK_WAIT_SECONDS, type TargetCheckView } from "../domain/deploy/target-checks.js";
import type { ApiClient } from "./api-client.js";
import { note, table, writeOut } from "./format.js";

type Out = (json: boolean, data: unknown, human: () => string) => void;
const usage = (msg: string): never => {
  throw new CommanderError(2, "ferry.usage", msg);
};
const collect = (v: string, acc: string[]) => [...acc, v];
const enc = encodeURIComponent;

function readJsonArg(text: string, what: string): unknown {
  const raw = text.startsWith("@") ? readFileSync(text.slice(1), "utf8") : text;
  try {
    return JSON.parse(raw);
  } catch (err) {
    return usage(`${what}: not valid JSON (${(err as Error).message}); pass JSON or @file.json`);
  }
}

/** A target as the API shows it: with its latest check (docs/api.md#target-checks). */
type CheckedTarget = TargetView & { check?: TargetCheckView | null };

function waitSeconds(text: string | true | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (text === true) return 30;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > MAX_CHECK_WAIT_SECONDS) usage(`--wait: a whole number of seconds from 0 to ${MAX_CHECK_WAIT_SECONDS}`);
  return n;
}

/** One line about a target's check. */
export function checkLine(c: TargetCheckView | null | undefined): string {
  if (!c) return "check: not checked";
  if (c.state === "ok") return `check: ok (${c.checkedAt ?? ""})`;
  if (c.state === "failed") return `check: FAILED ${c.code ?? ""}: ${c.message}`;
  return `check: pending${c.message ? ` (${c.message})` : ""}`;
}

/** A check task's log as the API serves it: the whole of it in one read (a task's log is at most MAX_TASK_LOG_BYTES). */
interface CheckLog {
  environment: string;
  target: string;
  taskId: string;
  complete: boolean;
  log: string;
}

async function checkLog(api: ApiClient, env: string, name: string, task?: string): Promise<CheckLog> {
  const q = new URLSearchParams({ limit: String(MAX_TASK_LOG_BYTES) });
  if (task !== undefined) q.set("task", task);
  const r = await api.text(`/api/v1/environments/${enc(env)}/targets/${enc(name)}/check/log?${q.toString()}`);
  return { environment: env, target: name, taskId: r.headers.get("x-ferry-task-id") ?? "", complete: r.headers.get("x-ferry-log-complete") === "true", log: r.body };
}

/** Prints a check's log on stdout (it is what was asked for), control characters escaped, as deployment logs are. */
function printCheckLog(l: CheckLog): void {
  writeOut(`--- ${l.environment}/${l.target} check log (${l.taskId}${l.complete ? "" : ", not complete"}) ---\n${l.log}${l.log === "" || l.log.endsWith("\n") ? "" : "\n"}`);
}

/** Polls a target until its check leaves pending or `seconds` pass; short requests, so no request outlives its timeout. */
async function awaitCheck(api: ApiClient, env: string, name: string, t: CheckedTarget, seconds: number | undefined): Promise<CheckedTarget> {
  if (!seconds) return t;
  const until = Date.now() + seconds * 1000;
  let cur = t;
  while (cur.check?.state === "pending" && Date.now() < until) {
    await sleep(Math.min(500, Math.max(1, until - Date.now())));
    cur = await api.request<CheckedTarget>("GET", `/api/v1/environments/${enc(env)}/targets/${enc(name)}`);
  }
  return cur;
}

export function catalogCommands(program: Command, client: () => ApiClient, print: Out): void {
  // ---- environments
  const env = program.command("env").description("environments, in promotion order");
  env
    .command("create <name>")
    .description("create an environment (appended after the last unless --position)")
    .option("--position <n>", "1 is first")
    .option("--description <text>")
    .option("--json", "print JSON")
    .action(async (name: string, o: { position?: string; description?: string; json?: boolean }) => {
      const body: Record<string, unknown> = { name };
      if (o.position !== undefined) {
        if (!/^\d+$/.test(o.position)) usage(`--position: "${o.position}" is not a whole number`);
        body["position"] = Number(o.position);
      }
      if (o.description !== undefined) body["description"] = o.description;
      const e = await client().request<EnvironmentView>("POST", "/api/v1/environments", body);
      print(!!o.json, e, () => `Environment ${e.name} created at position ${e.position}.`);
    });
  env
    .command("list")
    .description("list environments")
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      const r = await client().request<{ environments: EnvironmentView[] }>("GET", "/api/v1/environments");
      print(!!o.json, r.environments, () => table(["#", "NAME", "DESCRIPTION"], r.environments.map((e) => [String(e.position), e.name, e.description])));
    });
  env
    .command("show <name>")
    .option("--json", "print JSON")
    .action(async (name: string, o: { json?: boolean }) => {
      const e = await client().request<EnvironmentView>("GET", `/api/v1/environments/${enc(name)}`);
      print(!!o.json, e, () => `${e.name} (position ${e.position})\n  ${e.description || "-"}\n  settings: ${JSON.stringify(e.settings)}`);
    });
  env
    .command("update <name>")
    .description("change an environment's position, description or settings (its gates: see docs/gates.md)")
    .option("--position <n>", "1 is first")
    .option("--description <text>")
    .option("--settings <json>", "the settings object, as JSON or @file.json (replaces the current settings)")
    .option("--json", "print JSON")
    .action(async (name: string, o: { position?: string; description?: string; settings?: string; json?: boolean }) => {
      const body: Record<string, unknown> = {};
      if (o.position !== undefined) {
        if (!/^\d+$/.test(o.position)) usage(`--position: "${o.position}" is not a whole number`);
        body["position"] = Number(o.position);
      }
      if (o.description !== undefined) body["description"] = o.description;
      if (o.settings !== undefined) body["settings"] = readJsonArg(o.settings, "--settings");
      if (Object.keys(body).length === 0) usage("give --position, --description or --settings");
      const e = await client().request<EnvironmentView>("PATCH", `/api/v1/environments/${enc(name)}`, body);
      print(!!o.json, e, () => `Environment ${e.name} updated (position ${e.position}).`);
    });
  env
    .command("delete <name>")
    .option("--json", "print JSON")
    .action(async (name: string, o: { json?: boolean }) => {
      await client().request("DELETE", `/api/v1/environments/${enc(name)}`);
      print(!!o.json, { deleted: name }, () => `Environment ${name} deleted.`);
    });

  // ---- targets
  const target = program.command("target").description("targets: where components run");
  target
    .command("create <name>")
    .description("create a target in an environment")
    .requiredOption("--env <name>", "environment")
    .requiredOption("--kind <kind>", "docker | compose | ecs | nomad | ssh | winrm")
    .option("--agent <id>", "agent that serves the target (must be in the same environment)")
    .option("--config <json>", "kind-specific config as JSON, or @file.json", "{}")
    .option("--description <text>")
    .option("--wait [seconds]", `wait for the agent's check of the target (default 30, at most ${MAX_CHECK_WAIT_SECONDS})`)
    .option("--json", "print JSON")
    .action(async (name: string, o: { env: string; kind: string; agent?: string; config: string; description?: string; wait?: string | true; json?: boolean }) => {
      const wait = waitSeconds(o.wait);
      const body: Record<string, unknown> = { name, kind: o.kind, config: readJsonArg(o.config, "--config") };
      if (o.agent) body["agentId"] = o.agent;
      if (o.description !== undefined) body["description"] = o.description;
      const api = client();
      const t = await awaitCheck(api, o.env, name, await api.request<CheckedTarget>("POST", `/api/v1/environments/${enc(o.env)}/targets`, body), wait);
      print(!!o.json, t, () => `Target ${t.environment}/${t.name} (${t.kind}) created${t.agentId ? `, served by ${t.agentId}` : ""}.\n${checkLine(t.check)}`);
    });
  target
    .command("list")
    .option("--env <name>")
    .option("--kind <kind>")
    .option("--agent <id>")
    .option("--json", "print JSON")
    .action(async (o: { env?: string; kind?: string; agent?: string; json?: boolean }) => {
      const q = new URLSearchParams();
      if (o.env) q.set("environment", o.env);
      if (o.kind) q.set("kind", o.kind);
      if (o.agent) q.set("agentId", o.agent);
      const r = await client().request<{ targets: CheckedTarget[] }>("GET", `/api/v1/targets${q.size ? `?${q.toString()}` : ""}`);
      print(!!o.json, r.targets, () =>
        table(["ENV", "NAME", "KIND", "AGENT", "CHECK"], r.targets.map((t) => [t.environment, t.name, t.kind, t.agentId ?? "-", t.check ? (t.check.state === "failed" ? `failed ${t.check.code ?? ""}` : t.check.state) : "-"])),
      );
    });
  target
    .command("show <name>")
    .requiredOption("--env <name>")
    .option("--json", "print JSON")
    .action(async (name: string, o: { env: string; json?: boolean }) => {
      const t = await client().request<CheckedTarget>("GET", `/api/v1/environments/${enc(o.env)}/targets/${enc(name)}`);
      print(!!o.json, t, () => `${t.environment}/${t.name} (${t.kind}), agent ${t.agentId ?? "-"}\n${checkLine(t.check)}\n${JSON.stringify(t.config, null, 2)}`);
    });
  target
    .command("check <name>")
    .description("ask the target's agent to check the target again")
    .requiredOption("--env <name>")
    .option("--wait [seconds]", `wait for the answer (default 30, at most ${MAX_CHECK_WAIT_SECONDS})`)
    .option("--logs", "then print the check task's log (after --wait: the whole of it once the check is answered)", false)
    .option("--json", "print JSON")
    .action(async (name: string, o: { env: string; wait?: string | true; logs: boolean; json?: boolean }) => {
      const wait = waitSeconds(o.wait);
      const api = client();
      const t = await awaitCheck(api, o.env, name, await api.request<CheckedTarget>("POST", `/api/v1/environments/${enc(o.env)}/targets/${enc(name)}/check`), wait);
      if (o.logs && !t.check?.taskId) note(`no check log: ${checkLine(t.check)}`);
      const log = o.logs && t.check?.taskId ? await checkLog(api, o.env, name, t.check.taskId) : undefined;
      print(!!o.json, log ? { ...t, checkLog: log } : t, () => `${t.environment}/${t.name}: ${checkLine(t.check)}`);
      if (log && !o.json) printCheckLog(log);
    });
  target
    .command("check-log <name>")
    .description("print the log of the target's latest check task (or of --task, an earlier one)")
    .requiredOption("--env <name>")
    .option("--task <id>", "one of the target's check tasks (default: the latest check's)")
    .option("--json", "print JSON: environment, target, taskId, complete and log")
    .action(async (name: string, o: { env: string; task?: string; json?: boolean }) => {
      const log = await checkLog(client(), o.env, name, o.task);
      if (o.json) print(true, log, () => "");
      else printCheckLog(log);
    });
  target
    .command("update <name>")
    .requiredOption("--env <name>")
    .option("--agent <id>", "new agent ('none' to unassign)")
    .option("--config <json>", "new config as JSON, or @file.json")
    .option("--description <text>")
    .option("--wait [seconds]", `with a new agent or config, wait for the agent's check (default 30, at most ${MAX_CHECK_WAIT_SECONDS})`)
    .option("--json", "print JSON")
    .action(async (name: string, o: { env: string; agent?: string; config?: string; description?: string; wait?: string | true; json?: boolean }) => {
      const wait = waitSeconds(o.wait);
      const body: Record<string, unknown> = {};
      if (o.agent !== undefined) body["agentId"] = o.agent === "none" ? null : o.agent;
      if (o.config !== undefined) body["config"] = readJsonArg(o.config, "--config");
      if (o.description !== undefined) body["description"] = o.description;
      const api = client();
      const t = await awaitCheck(api, o.env, name, await api.request<CheckedTarget>("PATCH", `/api/v1/environments/${enc(o.env)}/targets/${enc(name)}`, body), wait);
      print(!!o.json, t, () => `Target ${t.environment}/${t.name} updated.\n${checkLine(t.check)}`);
    });
  target
    .command("delete <name>")
    .requiredOption("--env <name>")
    .option("--json", "print JSON")
    .action(async (name: string, o: { env: string; json?: boolean }) => {
      await client().request("DELETE", `/api/v1/environments/${enc(o.env)}/targets/${enc(name)}`);
      print(!!o.json, { deleted: `${o.env}/${name}` }, () => `Target ${o.env}/${name} deleted.`);
    });

  // ---- components
  const component = program.command("component").description("components: deployable services by image repository");
  component
    .command("create <name>")
    .requiredOption("--repository <repo>", "image repository, e.g. registry.example.com/team/web (no tag)")
    .option("--credentials <ref>", "name of registry credentials in the server's secret store")
    .option("--description <text>")
    .option("--json", "print JSON")
    .action(async (name: string, o: { repository: string; credentials?: string; description?: string; json?: boolean }) => {
      const body: Record<string, unknown> = { name, repository: o.repository };
      if (o.credentials) body["credentialsRef"] = o.credentials;
      if (o.description !== undefined) body["description"] = o.description;
      const c = await client().request<ComponentView>("POST", "/api/v1/components", body);
      print(!!o.json, c, () => `Component ${c.name} (${c.repository}) created.`);
    });
  component
    .command("list")
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      const r = await client().request<{ components: ComponentView[] }>("GET", "/api/v1/components");
      print(!!o.json, r.components, () => table(["NAME", "REPOSITORY", "CREDENTIALS"], r.components.map((c) => [c.name, c.repository, c.credentialsRef ?? "-"])));
    });
  component
    .command("show <name>")
    .option("--json", "print JSON")
    .action(async (name: string, o: { json?: boolean }) => {
      const c = await client().request<ComponentView>("GET", `/api/v1/components/${enc(name)}`);
      print(!!o.json, c, () => `${c.name}: ${c.repository}${c.credentialsRef ? ` (credentials ${c.credentialsRef})` : ""}`);
    });
  component
    .command("delete <name>")
    .option("--json", "print JSON")
    .action(async (name: string, o: { json?: boolean }) => {
      await client().request("DELETE", `/api/v1/components/${enc(name)}`);
      print(!!o.json, { deleted: name }, () => `Component ${name} deleted.`);
    });

  // ---- releases
  /** A release that must not be rolled back unattended says so (older servers send no flag: nothing to say). */
  const rollbackLine = (r: ReleaseView): string[] =>
    r.rollbackSafe === false ? [`  not safe to roll back automatically: a failed rollout waits for an approval${r.rollbackNote ? ` (${r.rollbackNote})` : ""}`] : [];
  const release = program.command("release").description("releases: immutable sets of digest-pinned images");
  release
    .command("create <name@version>")
    .description("cut a release; every tag is resolved to a digest now, once")
    .option("--component <name=ref>", "component and image: web=repo:tag, web=:tag, web=@sha256:… (repeatable)", collect, [])
    .option("--notes <file>", "release notes (Markdown) from a file")
    .option("--provenance <json>", "free-form provenance as JSON or @file.json (e.g. commit, pipeline URL)")
    .option("--not-rollback-safe", "rolling this release back unattended is not safe (e.g. an irreversible migration): a failed rollout of it waits for an approval before rolling back")
    .option("--rollback-note <text>", "with --not-rollback-safe: why (shown to whoever approves the rollback; at most 500 characters)")
    .option("--idempotency-key <key>", "makes a retried create safe (CI)")
    .option("--json", "print JSON")
    .action(async (ref: string, o: { component: string[]; notes?: string; provenance?: string; notRollbackSafe?: boolean; rollbackNote?: string; idempotencyKey?: string; json?: boolean }) => {
      const at = ref.lastIndexOf("@");
      if (at <= 0 || at === ref.length - 1) usage(`release: give it as NAME@VERSION (e.g. shop@1.4.2), not "${ref}"`);
      if (o.component.length === 0) usage("--component: a release pins at least one component (--component web=registry/team/web:1.4.2)");
      const components: Record<string, string> = {};
      for (const pair of o.component) {
        const i = pair.indexOf("=");
        if (i <= 0 || i === pair.length - 1) usage(`--component: "${pair}" is not name=image`);
        components[pair.slice(0, i)] = pair.slice(i + 1);
      }
      const body: Record<string, unknown> = { name: ref.slice(0, at), version: ref.slice(at + 1), components };
      if (o.notes) body["notes"] = readFileSync(o.notes, "utf8");
      if (o.provenance) body["provenance"] = readJsonArg(o.provenance, "--provenance");
      if (o.rollbackNote !== undefined && !o.notRollbackSafe) usage("--rollback-note: goes with --not-rollback-safe (it says why the release is not safe to roll back)");
      if (o.notRollbackSafe) body["rollbackSafe"] = false;
      if (o.rollbackNote !== undefined) body["rollbackNote"] = o.rollbackNote;
      const r = await client().request<ReleaseView>("POST", "/api/v1/releases", body, o.idempotencyKey ? { "idempotency-key": o.idempotencyKey } : {});
      print(!!o.json, r, () => [`Release ${r.name}@${r.version} (${r.id}):`, ...r.pins.map((p) => `  ${p.component.padEnd(16)} ${p.image}${p.sourceTag ? `  (from :${p.sourceTag})` : ""}`), ...rollbackLine(r)].join("\n"));
    });
  release
    .command("show <ref>")
    .description("show a release by id or name@version")
    .option("--json", "print JSON")
    .action(async (ref: string, o: { json?: boolean }) => {
      const r = await client().request<ReleaseView>("GET", `/api/v1/releases/${enc(ref)}`);
      print(!!o.json, r, () =>
        [
          `${r.name}@${r.version} (${r.id}), created ${r.createdAt} by ${r.createdBy}`,
          ...r.pins.map((p) => `  ${p.component.padEnd(16)} ${p.image}${p.sourceTag ? `  (from :${p.sourceTag})` : ""}${p.platforms.length ? `  [${p.platforms.map((x) => `${x.os}/${x.architecture}`).join(", ")}]` : ""}`),
          ...rollbackLine(r),
          ...(r.notes ? ["", r.notes] : []),
        ].join("\n"),
      );
    });
  release
    .command("list")
    .option("--name <name>")
    .option("--component <name>")
    .option("--limit <n>", "page size", "50")
    .option("--cursor <cursor>", "from a previous page's nextCursor")
    .option("--json", "print JSON")
    .action(async (o: { name?: string; component?: string; limit: string; cursor?: string; json?: boolean }) => {
      const q = new URLSearchParams({ limit: o.limit });
      if (o.name) q.set("name", o.name);
      if (o.component) q.set("component", o.component);
      if (o.cursor) q.set("cursor", o.cursor);
      const r = await client().request<{ releases: ReleaseView[]; nextCursor: string | null }>("GET", `/api/v1/releases?${q.toString()}`);
      print(!!o.json, r, () =>
        [table(["RELEASE", "ID", "COMPONENTS", "CREATED"], r.releases.map((x) => [`${x.name}@${x.version}`, x.id, x.pins.map((p) => p.component).join(","), x.createdAt])), ...(r.nextCursor ? [`more: --cursor ${r.nextCursor}`] : [])].join("\n"),
      );
    });
}
