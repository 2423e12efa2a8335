// `ferry promote|approve|reject|promotions|promotion|why-blocked|scan|exception|group|evidence` — moving releases
// through environments, and the records gates and auditors read.
import { readFileSync } from "node:fs";
import { type Command, CommanderError } from "commander";
import { evidenceKeyId, verifyEvidence } from "@ferry/pki";
import type { GateResultView, PromotionView } from "../domain/promotion/promotion-service.js";
import type { ApiClient } from "./api-client.js";
import { parseStrategyOption } from "./deploy-commands.js";
import { note, outJson, safeJson, table, terminal, writeOut } from "./format.js";

type Out = (json: boolean, data: unknown, human: () => string) => void;
const enc = encodeURIComponent;
const usage = (msg: string): never => {
  throw new CommanderError(2, "ferry.usage", msg);
};
const FINAL = new Set(["succeeded", "failed", "rolled_back", "rejected", "cancelled", "expired"]);

function gatesTable(gates: GateResultView[]): string {
  if (gates.length === 0) return "(no gates configured)";
  return gates.map((g) => `  [${g.state.toUpperCase()}] ${g.name} (${g.gate}): ${g.reason}${g.remedy ? `\n           → ${g.remedy}` : ""}`).join("\n");
}

/** "approve" → "approved", "reject" → "rejected" (not "rejectd"). */
export function pastTense(decision: string): string {
  return decision === "approve" ? "approved" : decision === "reject" ? "rejected" : decision;
}

function summary(p: PromotionView): string {
  return [
    `Promotion ${p.id}: ${p.release.name}@${p.release.version} → ${p.environment} — ${p.state}${p.reason ? ` (${p.reason})` : ""}`,
    `  requested by ${p.requestedBy} at ${p.requestedAt}${p.deploymentId ? `; deployment ${p.deploymentId}` : ""}${p.rolloutId ? `; rollout ${p.rolloutId} (ferry rollout show ${p.rolloutId})` : ""}`,
    ...(p.strategy ? [`  strategy: ${strategyLine(p)}`] : []),
    ...(p.approvals.length ? [`  decisions: ${p.approvals.map((a) => `${a.subject} ${pastTense(a.decision)}${a.comment ? ` ("${a.comment}")` : ""}`).join(", ")}`] : []),
    ...(p.breakGlass ? [`  break-glass by ${p.breakGlass.by}: ${p.breakGlass.reason}`] : []),
    gatesTable(p.gates),
  ].join("\n");
}

/** The strategy and where it came from: "rolling (requested) {"batch":"25%"}". */
function strategyLine(p: PromotionView): string {
  const { kind, ...rest } = p.strategy;
  const from = p.strategySource === "request" ? "requested" : p.strategySource === "environment" ? "the environment's" : "default";
  return `${kind} (${from})${kind === "all-at-once" ? "" : ` ${JSON.stringify(rest)}`}`;
}

function readJsonFile(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    return usage(`${what}: cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    return usage(`${what}: ${file} is not JSON: ${(err as Error).message}`);
  }
}

export function promotionCommands(program: Command, client: () => ApiClient, print: Out): void {
  program
    .command("promote <release>")
    .description("request a promotion of a release into an environment; it deploys once every gate passes")
    .requiredOption("--to <env>", "environment")
    .option("--strategy <kind-or-json>", 'deploy with this strategy instead of the environment\'s: JSON (\'{"kind":"rolling","batch":"25%"}\') or a kind whose fields have defaults ("all-at-once"); approvers see it')
    .option("--wait", "follow until the promotion ends (through its rollout, if it has one); exit 0 only if it succeeded", false)
    .option("--timeout <seconds>", "with --wait: give up after this long", "3600")
    .option("--json", "print JSON")
    .action(async (release: string, o: { to: string; strategy?: string; wait: boolean; timeout: string; json?: boolean }) => {
      const body: Record<string, unknown> = { release, environment: o.to };
      if (o.strategy !== undefined) body["strategy"] = parseStrategyOption(o.strategy);
      let p = await client().request<PromotionView>("POST", "/api/v1/promotions", body);
      if (o.wait) {
        // The id comes first, at once: a CI log shows what to approve, or look at, while this waits. Progress goes to
        // stderr — for people as lines, with --json as one JSON object per line — and the result alone to stdout.
        const progress = (event: string, extra: Record<string, unknown>, human: string) => {
          if (o.json) terminal.err(`${safeJson(JSON.stringify({ event, promotion: p.id, ...extra }))}\n`);
          else note(human);
        };
        progress("requested", { release: `${p.release.name}@${p.release.version}`, environment: p.environment, state: p.state }, `promotion ${p.id} requested: ${p.release.name}@${p.release.version} → ${p.environment}`);
        const deadline = Date.now() + Number(o.timeout) * 1000;
        let last = "";
        while (!FINAL.has(p.state)) {
          if (Date.now() > deadline) throw new CommanderError(4, "ferry.timeout", `promotion ${p.id} is still ${p.state}; see: ferry why-blocked ${p.id}`);
          const blocking = p.gates.filter((g) => g.state !== "passed");
          const line = p.rolloutId ? `${p.state}: through rollout ${p.rolloutId} (${p.strategy.kind}); follow it with ferry rollout show ${p.rolloutId}` : `${p.state}: ${blocking.map((g) => `${g.name}: ${g.reason}`).join("; ")}`;
          if (line !== last) progress("progress", { state: p.state, blocking: blocking.map((g) => ({ name: g.name, state: g.state, reason: g.reason })), ...(p.rolloutId ? { rollout: p.rolloutId } : {}) }, line);
          last = line;
          await new Promise((r) => setTimeout(r, 1000));
          p = await client().request<PromotionView>("GET", `/api/v1/promotions/${enc(p.id)}`);
        }
      }
      print(!!o.json, p, () => summary(p));
      if (o.wait && p.state !== "succeeded") process.exitCode = 1;
    });
  program
    .command("approve <id>")
    .description("approve a promotion (approver role; not one you requested; once per subject)")
    .option("--comment <text>", "why")
    .option("--json", "print JSON")
    .action(async (id: string, o: { comment?: string; json?: boolean }) => {
      const p = await client().request<PromotionView>("POST", `/api/v1/promotions/${enc(id)}/approve`, o.comment ? { comment: o.comment } : {});
      print(!!o.json, p, () => summary(p));
    });
  program
    .command("reject <id>")
    .description("reject a promotion; it ends")
    .requiredOption("--reason <text>", "why (recorded)")
    .option("--json", "print JSON")
    .action(async (id: string, o: { reason: string; json?: boolean }) => {
      const p = await client().request<PromotionView>("POST", `/api/v1/promotions/${enc(id)}/reject`, { reason: o.reason });
      print(!!o.json, p, () => summary(p));
    });
  program
    .command("break-glass <id>")
    .description("override freeze windows for a promotion (needs the environment's break-glass role; recorded)")
    .requiredOption("--reason <text>", "why (recorded in the audit log and the evidence)")
    .option("--json", "print JSON")
    .action(async (id: string, o: { reason: string; json?: boolean }) => {
      const p = await client().request<PromotionView>("POST", `/api/v1/promotions/${enc(id)}/break-glass`, { reason: o.reason });
      print(!!o.json, p, () => summary(p));
    });
  program
    .command("promotions")
    .description("list promotions, newest first")
    .option("--env <env>", "only this environment")
    .option("--state <state>", "only this state")
    .option("--json", "print JSON")
    .action(async (o: { env?: string; state?: string; json?: boolean }) => {
      const q = new URLSearchParams();
      if (o.env) q.set("environment", o.env);
      if (o.state) q.set("state", o.state);
      const r = await client().request<{ promotions: PromotionView[] }>("GET", `/api/v1/promotions?${q.toString()}`);
      print(!!o.json, r, () =>
        table(
          ["ID", "RELEASE", "ENV", "STATE", "BLOCKING", "REQUESTED", "BY"],
          r.promotions.map((p) => [p.id, `${p.release.name}@${p.release.version}`, p.environment, p.state, p.gates.filter((g) => g.state !== "passed").map((g) => g.name).join(", "), p.requestedAt, p.requestedBy]),
        ),
      );
    });
  const promotion = program.command("promotion").description("one promotion");
  promotion
    .command("show <id>")
    .description("gates, decisions, transitions and evidence of a promotion")
    .option("--json", "print JSON")
    .action(async (id: string, o: { json?: boolean }) => {
      const p = await client().request<PromotionView>("GET", `/api/v1/promotions/${enc(id)}`);
      print(!!o.json, p, () =>
        [
          summary(p),
          "",
          "transitions:",
          ...(p.transitions ?? []).map((t) => `  ${t.at}  ${t.from ?? "-"} → ${t.to}  by ${t.actor}${t.reason ? `: ${t.reason}` : ""}`),
          ...(p.evidence?.length ? ["", "evidence:", ...p.evidence.map((e) => `  ${e.id}  ${e.kind}  sha256:${e.hash}`)] : []),
        ].join("\n"),
      );
    });
  promotion
    .command("cancel <id>")
    .description("cancel a promotion still waiting for its gates")
    .option("--reason <text>")
    .option("--json", "print JSON")
    .action(async (id: string, o: { reason?: string; json?: boolean }) => {
      const p = await client().request<PromotionView>("POST", `/api/v1/promotions/${enc(id)}/cancel`, o.reason ? { reason: o.reason } : {});
      print(!!o.json, p, () => summary(p));
    });
  promotion
    .command("metadata <id>")
    .description("release-metadata.json of a successful promotion (JSON either way)")
    .option("--json", "print JSON (the document is JSON already; accepted for scripts that pass it everywhere)")
    .action(async (id: string) => {
      const m = await client().request<unknown>("GET", `/api/v1/promotions/${enc(id)}/release-metadata.json`);
      outJson(m);
    });
  promotion
    .command("notes <id>")
    .description("release-notes.md of a successful promotion")
    .option("--json", "print JSON: { promotion, markdown }")
    .action(async (id: string, o: { json?: boolean }) => {
      const r = await client().text(`/api/v1/promotions/${enc(id)}/release-notes.md`);
      if (o.json) outJson({ promotion: id, markdown: r.body });
      else writeOut(r.body);
    });
  program
    .command("why-blocked <id>")
    .description("every gate of a promotion: passed / pending / failed, why, and what would unblock it")
    .option("--json", "print JSON")
    .action(async (id: string, o: { json?: boolean }) => {
      const w = await client().request<{ promotion: string; state: string; blocked: boolean; gates: GateResultView[] }>("GET", `/api/v1/promotions/${enc(id)}/why-blocked`);
      print(!!o.json, w, () => `${w.promotion} is ${w.state}${w.blocked ? ", blocked by its gates" : ""}\n${gatesTable(w.gates)}`);
    });

  const scan = program.command("scan").description("security scan reports per image digest");
  scan
    .command("upload <digest> <file>")
    .description("upload a Trivy JSON or SARIF report for an image digest")
    .option("--json", "print JSON")
    .action(async (digest: string, file: string, o: { json?: boolean }) => {
      const report = readJsonFile(file, "scan report");
      const r = await client().request<{ id: string; scanner: string; format: string; counts: Record<string, number> }>("POST", "/api/v1/scans", { digest, report });
      print(!!o.json, r, () => `${r.id}: ${r.scanner} (${r.format}) — ${Object.entries(r.counts).map(([k, v]) => `${k} ${v}`).join(", ")}`);
    });
  scan
    .command("list <digest>")
    .description("scan reports of a digest")
    .option("--json", "print JSON")
    .action(async (digest: string, o: { json?: boolean }) => {
      const r = await client().request<{ scans: { id: string; scanner: string; format: string; counts: Record<string, number>; uploadedAt: string }[] }>("GET", `/api/v1/scans?digest=${enc(digest)}`);
      print(!!o.json, r, () => table(["ID", "SCANNER", "FORMAT", "COUNTS", "UPLOADED"], r.scans.map((s) => [s.id, s.scanner, s.format, Object.entries(s.counts).map(([k, v]) => `${k}=${v}`).join(" "), s.uploadedAt])));
    });

  const exception = program.command("exception").description("security exceptions: accepted findings with a reason, an approver and an expiry");
  exception
    .command("create <digest>")
    .description("accept findings up to a severity for a digest")
    .requiredOption("--max-severity <level>", "critical, high, medium or low")
    .requiredOption("--reason <text>", "why it is acceptable")
    .requiredOption("--expires <when>", "a duration (7d) or an ISO time")
    .option("--approver <subject>", "who approved it (default: you)")
    .option("--json", "print JSON")
    .action(async (digest: string, o: { maxSeverity: string; reason: string; expires: string; approver?: string; json?: boolean }) => {
      const body: Record<string, unknown> = { digest, maxSeverity: o.maxSeverity, reason: o.reason, expires: o.expires };
      if (o.approver) body["approver"] = o.approver;
      const e = await client().request<{ id: string; expiresAt: string }>("POST", "/api/v1/exceptions", body);
      print(!!o.json, e, () => `${e.id}: up to ${o.maxSeverity} accepted for ${digest} until ${e.expiresAt}`);
    });
  exception
    .command("list")
    .option("--digest <digest>")
    .option("--json", "print JSON")
    .action(async (o: { digest?: string; json?: boolean }) => {
      const r = await client().request<{ exceptions: { id: string; digest: string; maxSeverity: string; reason: string; approver: string; expiresAt: string; expired: boolean }[] }>(
        "GET",
        `/api/v1/exceptions${o.digest ? `?digest=${enc(o.digest)}` : ""}`,
      );
      print(!!o.json, r, () => table(["ID", "DIGEST", "UP TO", "APPROVER", "EXPIRES", "REASON"], r.exceptions.map((e) => [e.id, e.digest.slice(0, 19), e.maxSeverity, e.approver, e.expired ? `expired ${e.expiresAt}` : e.expiresAt, e.reason])));
    });

  const group = program.command("group").description("groups of subjects that approve promotions");
  group
    .command("add <group> <subject>")
    .description("add a subject to a group")
    .option("--json", "print JSON")
    .action(async (g: string, subject: string, o: { json?: boolean }) => {
      await client().request("POST", `/api/v1/groups/${enc(g)}/members`, { subject });
      print(!!o.json, { group: g, subject, member: true }, () => `${subject} added to ${g}`);
    });
  group
    .command("remove <group> <subject>")
    .description("remove a subject from a group")
    .option("--json", "print JSON")
    .action(async (g: string, subject: string, o: { json?: boolean }) => {
      await client().request("DELETE", `/api/v1/groups/${enc(g)}/members/${enc(subject)}`);
      print(!!o.json, { group: g, subject, member: false }, () => `${subject} removed from ${g}`);
    });
  group
    .command("list")
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      const r = await client().request<{ groups: { group: string; subjects: string[] }[] }>("GET", "/api/v1/groups");
      print(!!o.json, r, () => table(["GROUP", "SUBJECTS"], r.groups.map((x) => [x.group, x.subjects.join(", ")])));
    });

  const evidence = program.command("evidence").description("signed evidence packets (DSSE envelopes)");
  evidence
    .command("list")
    .description("packets in chain order, newest last")
    .option("--subject <id>", "only packets about this promotion or deployment")
    .option("--json", "print JSON")
    .action(async (o: { subject?: string; json?: boolean }) => {
      const r = await client().request<{ evidence: { id: string; kind: string; subjectId: string; hash: string; previousHash: string | null; createdAt: string }[] }>(
        "GET",
        `/api/v1/evidence${o.subject ? `?subject=${enc(o.subject)}` : ""}`,
      );
      print(!!o.json, r, () => table(["ID", "KIND", "SUBJECT", "SHA256", "CREATED"], r.evidence.map((e) => [e.id, e.kind, e.subjectId, e.hash.slice(0, 16), e.createdAt])));
    });
  evidence
    .command("get <id>")
    .description("print a packet's envelope (save it to verify offline); with --json, the packet's record around it")
    .option("--json", "print JSON: id, kind, subject, hash, key id and the envelope")
    .action(async (id: string, o: { json?: boolean }) => {
      const r = await client().request<{ envelope: unknown }>("GET", `/api/v1/evidence/${enc(id)}`);
      outJson(o.json ? r : r.envelope);
    });
  evidence
    .command("key")
    .description("print the evidence public key (PEM), for offline verification")
    .option("--json", "print JSON: key ids, algorithms and PEMs")
    .action(async (o: { json?: boolean }) => {
      const r = await client().request<{ keys: { keyId: string; publicKeyPem: string }[] }>("GET", "/api/v1/evidence-keys");
      print(!!o.json, r, () => r.keys.map((k) => k.publicKeyPem.trim()).join("\n"));
    });
  evidence
    .command("verify <file>")
    .description("verify an envelope offline: needs only the evidence public key")
    .requiredOption("--key <pem>", "the evidence public key (ferry evidence key > evidence.pub.pem)")
    .option("--json", "print JSON")
    .action((file: string, o: { key: string; json?: boolean }) => {
      const envelope = readJsonFile(file, "evidence");
      let pem: string;
      try {
        pem = readFileSync(o.key, "utf8");
      } catch (err) {
        return usage(`--key: cannot read ${o.key}: ${(err as Error).message}`);
      }
      let keyId: string;
      try {
        keyId = evidenceKeyId(pem);
      } catch (err) {
        return usage(`--key: ${o.key} is not a public key in PEM form: ${(err as Error).message}`);
      }
      const v = verifyEvidence(envelope, [{ keyId, publicKeyPem: pem }]);
      print(!!o.json, v, () => (v.ok ? `OK: signed by ${v.keyId}; sha256:${v.hash}` : `FAILED: ${v.code} at ${v.where}: ${v.message}`));
      if (!v.ok) process.exitCode = 1;
    });
}

export function webhookCommands(program: Command, client: () => ApiClient, print: Out): void {
  const webhook = program.command("webhook").description("outgoing webhooks for promotion events (HMAC-SHA256 signed)");
  webhook
    .command("create <url>")
    .description("subscribe a URL; the signing secret is printed once")
    .option("--event <type>", "promotion.requested, .approved, .rejected, .blocked, .deployed, .failed, .rolled_back (repeatable; default all)", (v: string, acc: string[]) => [...acc, v], [])
    .option("--secret <secret>", "use this secret (at least 16 characters) instead of a generated one")
    .option("--json", "print JSON")
    .action(async (url: string, o: { event: string[]; secret?: string; json?: boolean }) => {
      const body: Record<string, unknown> = { url };
      if (o.event.length) body["events"] = o.event;
      if (o.secret) body["secret"] = o.secret;
      const w = await client().request<{ id: string; url: string; events: string[]; secret: string }>("POST", "/api/v1/webhooks", body);
      print(!!o.json, w, () => `${w.id} → ${w.url} (${w.events.join(", ")})\nsigning secret (shown once): ${w.secret}`);
    });
  webhook
    .command("list")
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      const r = await client().request<{ webhooks: { id: string; url: string; events: string[]; enabled: boolean; disabledReason: string | null }[] }>("GET", "/api/v1/webhooks");
      print(!!o.json, r, () => table(["ID", "URL", "EVENTS", "ENABLED"], r.webhooks.map((w) => [w.id, w.url, w.events.join(","), w.enabled ? "yes" : `no (${w.disabledReason ?? ""})`])));
    });
  webhook
    .command("deliveries")
    .option("--status <status>", "pending, delivered, failed or dropped")
    .option("--json", "print JSON")
    .action(async (o: { status?: string; json?: boolean }) => {
      const r = await client().request<{ deliveries: { id: string; subscriptionId: string; event: string; status: string; attempts: number; lastStatusCode: number | null; lastError: string | null }[] }>(
        "GET",
        `/api/v1/webhooks/deliveries${o.status ? `?status=${enc(o.status)}` : ""}`,
      );
      print(!!o.json, r, () => table(["ID", "WEBHOOK", "EVENT", "STATUS", "ATTEMPTS", "LAST"], r.deliveries.map((x) => [x.id, x.subscriptionId, x.event, x.status, String(x.attempts), x.lastStatusCode ? String(x.lastStatusCode) : (x.lastError ?? "")])));
    });
}

type GateDecl = { kind: string; name?: string; config?: Record<string, unknown> };
type WindowDecl = { name: string; timeZone: string; cron?: string; durationMinutes?: number; weekly?: { days: string[]; start: string; end: string } };

/** `ferry freeze` edits the freeze gate in an environment's settings (the server validates every change). */
export function freezeCommands(program: Command, client: () => ApiClient, print: Out): void {
  const freeze = program.command("freeze").description("freeze windows: recurring times when promotions into an environment are blocked");
  const load = async (env: string) => {
    const e = await client().request<{ settings: Record<string, unknown> }>("GET", `/api/v1/environments/${enc(env)}`);
    const gates = (Array.isArray(e.settings["gates"]) ? e.settings["gates"] : []) as GateDecl[];
    return { settings: e.settings, gates };
  };
  const save = async (env: string, settings: Record<string, unknown>, gates: GateDecl[]) =>
    client().request("PATCH", `/api/v1/environments/${enc(env)}`, { settings: { ...settings, gates } });
  const windowsOf = (g: GateDecl) => ((g.config?.["windows"] as WindowDecl[] | undefined) ?? []);

  freeze
    .command("list")
    .requiredOption("--env <env>", "environment")
    .option("--json", "print JSON")
    .action(async (o: { env: string; json?: boolean }) => {
      const { gates } = await load(o.env);
      const rows = gates.filter((g) => g.kind === "freeze").flatMap((g) => windowsOf(g).map((w) => ({ gate: g.name ?? "freeze", ...w })));
      print(!!o.json, { windows: rows }, () =>
        table(
          ["GATE", "WINDOW", "TIME ZONE", "WHEN"],
          rows.map((w) => [w.gate, w.name, w.timeZone, w.cron ? `cron "${w.cron}" for ${w.durationMinutes} min` : `${w.weekly?.days.join(",")} ${w.weekly?.start}–${w.weekly?.end}`]),
        ),
      );
    });
  freeze
    .command("add")
    .description("add a window: --cron EXPR --duration MINUTES, or --days mon,fri --start HH:MM --end HH:MM")
    .requiredOption("--env <env>", "environment")
    .requiredOption("--name <name>", "the window's name")
    .requiredOption("--tz <zone>", "IANA time zone, e.g. Europe/Berlin (DST handled)")
    .option("--cron <expr>", "when it starts: minute hour day-of-month month day-of-week")
    .option("--duration <minutes>", "with --cron: how long it lasts on the wall clock")
    .option("--days <list>", "weekly: comma-separated days (mon,tue,…)")
    .option("--start <HH:MM>", "weekly: start time")
    .option("--end <HH:MM>", "weekly: end time (24:00 for midnight; before start crosses midnight)")
    .option("--break-glass-role <role>", "role a break-glass override needs (default admin)")
    .option("--json", "print JSON")
    .action(async (o: { env: string; name: string; tz: string; cron?: string; duration?: string; days?: string; start?: string; end?: string; breakGlassRole?: string; json?: boolean }) => {
      let w: WindowDecl;
      if (o.cron) {
        if (!o.duration || !/^\d+$/.test(o.duration)) usage("--duration: whole minutes, required with --cron");
        w = { name: o.name, timeZone: o.tz, cron: o.cron, durationMinutes: Number(o.duration) };
      } else if (o.days && o.start && o.end) {
        w = { name: o.name, timeZone: o.tz, weekly: { days: o.days.split(",").map((d) => d.trim()), start: o.start, end: o.end } };
      } else {
        return usage("give --cron and --duration, or --days, --start and --end");
      }
      const { settings, gates } = await load(o.env);
      let gate = gates.find((g) => g.kind === "freeze");
      if (!gate) {
        gate = { kind: "freeze", name: "freeze windows", config: { windows: [] } };
        gates.push(gate);
      }
      gate.config = { ...(gate.config ?? {}), windows: [...windowsOf(gate), w], ...(o.breakGlassRole ? { breakGlassRole: o.breakGlassRole } : {}) };
      await save(o.env, settings, gates);
      print(!!o.json, { environment: o.env, added: w }, () => `freeze window ${o.name} added to ${o.env}`);
    });
  freeze
    .command("remove")
    .requiredOption("--env <env>", "environment")
    .requiredOption("--name <name>", "the window's name")
    .option("--json", "print JSON")
    .action(async (o: { env: string; name: string; json?: boolean }) => {
      const { settings, gates } = await load(o.env);
      let found = false;
      const next = gates.flatMap((g) => {
        if (g.kind !== "freeze") return [g];
        const kept = windowsOf(g).filter((w) => w.name !== o.name);
        if (kept.length !== windowsOf(g).length) found = true;
        return kept.length ? [{ ...g, config: { ...(g.config ?? {}), windows: kept } }] : [];
      });
      if (!found) usage(`${o.env} has no freeze window named ${o.name}`);
      await save(o.env, settings, next);
      print(!!o.json, { environment: o.env, removed: o.name }, () => `freeze window ${o.name} removed from ${o.env}`);
    });
}
