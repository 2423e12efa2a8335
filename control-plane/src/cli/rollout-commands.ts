// `ferry rollouts` and `ferry rollout show|pause|resume|promote|abort` — rollouts (deployments with a strategy other
// than all-at-once) as a plan of steps, and the operator's controls over them.
import type { Command } from "commander";
import type { RolloutStepView, RolloutView } from "../domain/rollout/rollout-service.js";
import { listQuery, type ApiClient } from "./api-client.js";
import { table } from "./format.js";

type Out = (json: boolean, data: unknown, human: () => string) => void;
const enc = encodeURIComponent;

/** What a step did, in one cell: the targets' outcomes of a wave, the end of a wait, who approved, the error. */
function stepResult(s: RolloutStepView): string {
  const parts: string[] = [];
  const error = s.result["error"] as { code?: string; message?: string } | undefined;
  if (error) parts.push(`${error.code ?? ""}: ${error.message ?? ""}`);
  const targets = s.result["targets"] as Record<string, { name: string; state: string; code: string | null; weights?: { stable: number; new: number } }> | undefined;
  if (targets && !error) parts.push(Object.values(targets).map((o) => `${o.name} ${o.state}${o.code ? ` (${o.code})` : ""}${o.weights ? ` new ${o.weights.new}% / stable ${o.weights.stable}%` : ""}`).join(", "));
  const analysis = s.result["analysis"] as { verdict: string; attempt: number; perTarget: { target: string; verdict: string }[] } | undefined;
  if (analysis) parts.push(`analysis ${analysis.verdict} (attempt ${analysis.attempt}): ${analysis.perTarget.map((p) => `${p.target} ${p.verdict}`).join(", ")}`);
  if (s.result["stage"] === "bake" && s.state === "running" && s.wakeAt) parts.push(`baking again until ${s.wakeAt}`);
  if (s.state === "running" && s.wakeAt) parts.push(`until ${s.wakeAt}`);
  if (typeof s.result["approvedBy"] === "string") parts.push(`approved by ${s.result["approvedBy"]}`);
  if (s.kind === "approval" && s.state === "running" && typeof s.spec["reason"] === "string") parts.push(`waiting: ${s.spec["reason"]}`);
  if (typeof s.result["declinedBy"] === "string") parts.push(`rollback declined by ${s.result["declinedBy"]}`);
  if (s.result["endedBy"] === "promote") parts.push(`promoted by ${String(s.result["promotedBy"])}`);
  if (Array.isArray(s.result["nothingToRestore"])) parts.push(`nothing to restore on ${(s.result["nothingToRestore"] as string[]).join(", ")}`);
  return parts.join("; ");
}

export function rolloutSummary(r: RolloutView): string {
  const text = (v: unknown): string => (typeof v === "string" ? v : "");
  const reason = r.reason ? `\n  reason: ${text(r.reason["code"])} ${text(r.reason["message"])}${r.reason["by"] ? ` (by ${text(r.reason["by"])})` : ""}` : "";
  return [
    `Rollout ${r.id}: ${r.strategy.kind} to ${r.environment} — ${r.state}${r.paused ? " (paused)" : ""}${r.abortRequested && r.state === "running" ? " (aborting)" : ""}${reason}`,
    table(
      ["#", "PHASE", "STEP", "STATE", "ATTEMPTS", "RESULT"],
      r.steps.map((s) => [`${s.index === r.currentStep && !r.finishedAt ? ">" : ""}${s.index}`, s.phase, s.name, s.state, String(s.attempts), stepResult(s)]),
    ),
  ].join("\n");
}

export function rolloutCommands(program: Command, client: () => ApiClient, print: Out): void {
  program
    .command("rollouts")
    .description("list rollouts, newest first")
    .option("--env <env>", "only this environment")
    .option("--state <state>", "running, halted, rolling_back, succeeded, failed or rolled_back")
    .option("--limit <n>", "page size", "50")
    .option("--cursor <cursor>", "next page")
    .option("--json", "print JSON")
    .action(async (o: { env?: string; state?: string; limit: string; cursor?: string; json?: boolean }) => {
      const q = listQuery(o);
      const r = await client().request<{ rollouts: RolloutView[]; nextCursor: string | null }>("GET", `/api/v1/rollouts?${q.toString()}`);
      print(!!o.json, r, () =>
        [
          table(
            ["ID", "STRATEGY", "ENV", "STATE", "STEP", "CREATED", "BY"],
            r.rollouts.map((x) => [x.id, x.strategy.kind, x.environment, `${x.state}${x.paused ? " (paused)" : ""}`, `${Math.min(x.currentStep + 1, x.steps.length)}/${x.steps.length}`, x.createdAt, x.requestedBy]),
          ),
          ...(r.nextCursor ? [`more: --cursor ${r.nextCursor}`] : []),
        ].join("\n"),
      );
    });

  const rollout = program.command("rollout").description("one rollout: its steps, and pause, resume, promote, abort");
  rollout
    .command("show <id>")
    .description("the plan as steps with their state, attempts and results")
    .option("--json", "print JSON")
    .action(async (id: string, o: { json?: boolean }) => {
      const r = await client().request<RolloutView>("GET", `/api/v1/rollouts/${enc(id)}`);
      print(!!o.json, r, () => rolloutSummary(r));
    });
  const control = (name: "pause" | "resume" | "promote" | "abort", description: string): void => {
    const c = rollout.command(`${name} <id>`).description(description).option("--json", "print JSON");
    if (name === "abort") c.option("--reason <text>", "why (recorded in the rollout and the audit log)");
    c.action(async (id: string, o: { json?: boolean; reason?: string }) => {
      const r = await client().request<RolloutView>("POST", `/api/v1/rollouts/${enc(id)}/${name}`, name === "abort" && o.reason !== undefined ? { reason: o.reason } : {});
      print(!!o.json, r, () => rolloutSummary(r));
    });
  };
  control("pause", "start no new step (a wave already queued runs to its end)");
  control("resume", "continue a paused rollout");
  control("promote", "end the current soak now, or give the current approval (also a rollback's, for a release not safe to roll back automatically)");
  control("abort", "stop the rollout and roll every target it updated back to its previous digests; while a rollback waits for approval, decline it (nothing is rolled back)");
}
