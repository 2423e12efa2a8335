// The gate kinds Ferry knows, and the two things done with an environment's `settings.gates`: validate it (when
// the environment is saved, so a typo is refused then and not when a promotion waits on it) and evaluate it.
//
// Evaluation runs every gate, in the declared order, even after one has failed: why-blocked lists them all, and
// the evidence packet records every gate's inputs and result. Overall: any failed gate fails the promotion, else any
// pending gate keeps it pending, else it passes; an environment without gates passes.
import type { Role } from "../../auth/roles.js";
import { FerryError, isFerryError } from "../../errors.js";
import { approvalsGate } from "./approvals.js";
import { freezeGate } from "./freeze.js";
import { policyGate } from "./policy.js";
import { priorEnvironmentGate } from "./prior-environment.js";
import { securityGate } from "./security.js";
import type { GateContext, GateEvaluator, GateResult, GateState } from "./types.js";

const EVALUATORS = {
  approvals: approvalsGate,
  "prior-environment": priorEnvironmentGate,
  security: securityGate,
  freeze: freezeGate,
  policy: policyGate,
} as const;

export type GateKind = keyof typeof EVALUATORS;
export const GATE_KINDS = Object.keys(EVALUATORS) as GateKind[];

type ConfigOf<K extends GateKind> = ReturnType<(typeof EVALUATORS)[K]["parseConfig"]>;

/** A validated gate declaration. */
export type DeclaredGate = { [K in GateKind]: { kind: K; name: string; config: ConfigOf<K> } }[GateKind];

export interface GateVerdict {
  state: GateState;
  /** The gates that are not passed, in declared order. */
  blocking: GateResult[];
  /** A blocking gate said no for good (an approvals rejection): the promotion ends rather than waits. */
  final: boolean;
}

export function isGateKind(kind: unknown): kind is GateKind {
  return typeof kind === "string" && Object.hasOwn(EVALUATORS, kind);
}

/** Every evaluator, by kind, with its types erased for callers that dispatch on a kind read from data. */
export function evaluatorFor(kind: GateKind): GateEvaluator<unknown, GateContext> {
  return EVALUATORS[kind];
}

const fail = (field: string, msg: string): never => {
  throw new FerryError("VALIDATION_FAILED", `${field}: ${msg}`, { field });
};
const NAME = /^[^\s].{0,127}$/u;

/**
 * Validates an environment's `settings.gates` (absent or null: no gates). Errors name the field from `gates`, e.g.
 * "gates[1].config.windows[0].timeZone: …" or "gates[2].kind: "sbom" is not a gate kind (…)".
 */
export function parseGates(raw: unknown): DeclaredGate[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) return fail("gates", "must be a list of gates");
  const names = new Set<string>();
  return raw.map((item, i) => {
    const path = `gates[${i}]`;
    if (typeof item !== "object" || item === null || Array.isArray(item)) return fail(path, "must be an object with kind, name and config");
    const g = item as Record<string, unknown>;
    for (const k of Object.keys(g)) if (!["kind", "name", "config"].includes(k)) fail(`${path}.${k}`, "unknown field (known: kind, name, config)");
    if (!isGateKind(g.kind)) fail(`${path}.kind`, `${JSON.stringify(g.kind)} is not a gate kind (${GATE_KINDS.join(", ")})`);
    const kind = g.kind as GateKind;
    const name = g.name ?? kind;
    if (typeof name !== "string" || !NAME.test(name)) return fail(`${path}.name`, "must be a string of 1 to 128 characters, not starting with a space");
    if (names.has(name)) fail(`${path}.name`, `"${name}" names an earlier gate; give each gate its own name`);
    names.add(name);
    let config: unknown;
    try {
      config = evaluatorFor(kind).parseConfig(g.config);
    } catch (err) {
      if (isFerryError(err) && err.code === "VALIDATION_FAILED") {
        const field = typeof err.details.field === "string" ? err.details.field : "config";
        throw new FerryError("VALIDATION_FAILED", `${path}.${err.message}`, { ...err.details, field: `${path}.${field}` }, { cause: err });
      }
      throw err;
    }
    return { kind, name, config } as DeclaredGate;
  });
}

/** Runs every gate in order; results carry the declared names. */
export function evaluateAll(gates: readonly DeclaredGate[], ctx: GateContext, now: Date): { results: GateResult[]; verdict: GateVerdict } {
  const results = gates.map((g) => ({ ...evaluatorFor(g.kind).evaluate(g.config, ctx, now), name: g.name }));
  const blocking = results.filter((r) => r.state !== "passed");
  const state: GateState = blocking.some((r) => r.state === "failed") ? "failed" : blocking.length > 0 ? "pending" : "passed";
  return { results, verdict: { state, blocking, final: blocking.some((r) => r.details.final === true) } };
}

/** Groups whose members may approve promotions into the environment (from its approvals gates). */
export function approverGroups(gates: readonly DeclaredGate[]): string[] {
  return [...new Set(gates.flatMap((g) => (g.kind === "approvals" ? [g.config.group] : [])))];
}

/** The role a break-glass override needs: the first freeze gate's, else admin. */
export function breakGlassRole(gates: readonly DeclaredGate[]): Role {
  for (const g of gates) if (g.kind === "freeze") return g.config.breakGlassRole;
  return "admin";
}
