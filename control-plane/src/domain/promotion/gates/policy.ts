// Policy gate: small declarative rules over the release, each with its own message. A release is immutable, so a
// rule it breaks stays broken: the gate fails and the remedy is a new release (or a change of policy).
//
//   required-labels     every listed label is set on the release; "team" needs the label, "tier=gold" that value
//   allowed-registries  every image comes from one of the registries (a host, or host/path prefix); an image without a
//                       registry host is Docker Hub's (nginx = registry-1.docker.io/library/nginx, and docker.io
//                       means registry-1.docker.io)
//   max-age             the release was created at most this long ago
import { FerryError } from "../../errors.js";
import { formatDuration, parseDuration } from "../../fleet/durations.js";
import { isoSeconds, type GateContext, type GateEvaluator, type GateResult } from "./types.js";

export type PolicyRule =
  | { type: "required-labels"; labels: { key: string; value: string | null }[] }
  | { type: "allowed-registries"; registries: string[] }
  | { type: "max-age"; ageMs: number };

export interface PolicyConfig {
  rules: PolicyRule[];
}

export type PolicyInput = Pick<GateContext, "release">;

const KIND = "policy";
const RULE_TYPES = ["required-labels", "allowed-registries", "max-age"] as const;
const DOCKER_HUB = "registry-1.docker.io";
const DOCKER_HUB_ALIASES = new Set(["docker.io", "index.docker.io", DOCKER_HUB]);

const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/;
const REGISTRY = /^[A-Za-z0-9.-]+(?::\d+)?(?:\/[a-z0-9._-]+)*$/;

const fail = (field: string, msg: string): never => {
  throw new FerryError("VALIDATION_FAILED", `${field}: ${msg}`, { field });
};
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function stringList(v: unknown, field: string): string[] {
  if (!Array.isArray(v) || v.length === 0) return fail(field, "must be a non-empty list of strings");
  return v.map((s, i) => (typeof s === "string" && s.trim() !== "" ? s.trim() : fail(`${field}[${i}]`, "must be a non-empty string")));
}

function parseRule(raw: unknown, path: string): PolicyRule {
  if (!isObject(raw)) return fail(path, "must be an object");
  const only = (keys: string[]): void => {
    for (const k of Object.keys(raw)) if (!keys.includes(k)) fail(`${path}.${k}`, `unknown field for a ${String(raw.type)} rule (known: ${keys.join(", ")})`);
  };
  switch (raw.type) {
    case "required-labels": {
      only(["type", "labels"]);
      const labels = stringList(raw.labels, `${path}.labels`).map((l, i) => {
        const eq = l.indexOf("=");
        const key = eq < 0 ? l : l.slice(0, eq);
        if (!LABEL_KEY.test(key)) fail(`${path}.labels[${i}]`, `"${key}" is not a label key`);
        return { key, value: eq < 0 ? null : l.slice(eq + 1) };
      });
      return { type: "required-labels", labels };
    }
    case "allowed-registries": {
      only(["type", "registries"]);
      const registries = stringList(raw.registries, `${path}.registries`).map((r, i) => {
        const entry = r.replace(/\/+$/, "");
        if (!REGISTRY.test(entry)) fail(`${path}.registries[${i}]`, `"${r}" is not a registry host or host/path (no scheme, tag or digest), e.g. registry.example.com or ghcr.io/acme`);
        // A bare host stays a host ("ghcr.io" must not become Docker Hub's "ghcr.io" namespace).
        return entry.includes("/") ? qualifiedRepository(entry) : (DOCKER_HUB_ALIASES.has(entry.toLowerCase()) ? DOCKER_HUB : entry.toLowerCase());
      });
      return { type: "allowed-registries", registries };
    }
    case "max-age": {
      only(["type", "age"]);
      if (typeof raw.age !== "string") fail(`${path}.age`, "must be a duration such as 7d or 36h");
      const ageMs = parseDuration(raw.age as string, `${path}.age`);
      if (ageMs <= 0) fail(`${path}.age`, "must be longer than zero");
      return { type: "max-age", ageMs };
    }
    default:
      return fail(`${path}.type`, `${JSON.stringify(raw.type)} is not a rule type (${RULE_TYPES.join(", ")})`);
  }
}

/**
 * repository → host/path, spelled the way releases store it (docs/registry.md): host lowercased, Docker Hub's
 * implicit host and library/ namespace made explicit, and docker.io / index.docker.io spelled registry-1.docker.io.
 * Used for both sides, so an operator may write "docker.io/library" in a policy.
 */
export function qualifiedRepository(repository: string): string {
  const slash = repository.indexOf("/");
  const first = slash < 0 ? repository : repository.slice(0, slash);
  if (first.includes(".") || first.includes(":") || first === "localhost") {
    const host = first.toLowerCase();
    return `${DOCKER_HUB_ALIASES.has(host) ? DOCKER_HUB : host}${slash < 0 ? "" : repository.slice(slash)}`;
  }
  return slash < 0 ? `${DOCKER_HUB}/library/${repository}` : `${DOCKER_HUB}/${repository}`;
}

/** "9d 3h", "5h 12m", "42m", "30s": an age as an operator reads it. */
function roughly(ms: number): string {
  const d = Math.floor(ms / 86_400_000);
  const h = Math.floor((ms % 86_400_000) / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  if (d > 0) return h > 0 ? `${d}d ${h}h` : `${d}d`;
  if (h > 0) return m > 0 ? `${h}h ${m}m` : `${h}h`;
  if (m > 0) return `${m}m`;
  return `${Math.max(0, Math.floor(ms / 1000))}s`;
}

interface RuleOutcome {
  type: PolicyRule["type"];
  passed: boolean;
  message: string;
  remedy: string | null;
}

function checkRule(rule: PolicyRule, input: PolicyInput, now: Date): RuleOutcome {
  const rel = input.release;
  switch (rule.type) {
    case "required-labels": {
      const labels = rel.labels ?? {};
      const problems = rule.labels.flatMap(({ key, value }) => {
        const have = Object.hasOwn(labels, key) ? labels[key] : undefined;
        if (have === undefined) return [`label ${key}${value === null ? "" : `=${value}`} is missing`];
        if (value !== null && have !== value) return [`label ${key} is "${have}", policy requires "${value}"`];
        return [];
      });
      const wanted = rule.labels.map((l) => (l.value === null ? l.key : `${l.key}=${l.value}`)).join(", ");
      return problems.length === 0
        ? { type: rule.type, passed: true, message: `release has the required labels (${wanted})`, remedy: null }
        : { type: rule.type, passed: false, message: `required labels: ${problems.join(", ")}`, remedy: `cut a new release with labels ${wanted}` };
    }
    case "allowed-registries": {
      const bad = rel.pins.filter((p) => {
        const q = qualifiedRepository(p.repository);
        return !rule.registries.some((r) => q === r || q.startsWith(`${r}/`));
      });
      const allowed = rule.registries.join(", ");
      return bad.length === 0
        ? { type: rule.type, passed: true, message: `every image comes from an allowed registry (${allowed})`, remedy: null }
        : {
          type: rule.type, passed: false,
          message: `images from registries not allowed: ${bad.map((p) => `${p.component} from ${p.repository}`).join(", ")} (allowed: ${allowed})`,
          remedy: `cut a new release whose images come from ${allowed}`,
        };
    }
    case "max-age": {
      const age = now.getTime() - rel.createdAt.getTime();
      return age <= rule.ageMs
        ? { type: rule.type, passed: true, message: `release is ${roughly(age)} old (at most ${formatDuration(rule.ageMs)})`, remedy: null }
        : {
          type: rule.type, passed: false,
          message: `release is ${roughly(age)} old (created ${isoSeconds(rel.createdAt)}); policy allows at most ${formatDuration(rule.ageMs)}`,
          remedy: "cut a new release (rebuilt, rescanned) and promote that",
        };
    }
  }
}

export const policyGate: GateEvaluator<PolicyConfig, PolicyInput> = {
  kind: KIND,

  parseConfig(raw: unknown): PolicyConfig {
    if (!isObject(raw)) return fail("config", "must be an object");
    for (const k of Object.keys(raw)) if (k !== "rules") fail(`config.${k}`, "unknown field (known: rules)");
    if (!Array.isArray(raw.rules) || raw.rules.length === 0) fail("config.rules", "must be a non-empty list of rules");
    return { rules: (raw.rules as unknown[]).map((r, i) => parseRule(r, `config.rules[${i}]`)) };
  },

  evaluate(config: PolicyConfig, input: PolicyInput, now: Date): GateResult {
    const outcomes = config.rules.map((r) => checkRule(r, input, now));
    const failing = outcomes.filter((o) => !o.passed);
    const details = { rules: outcomes.map(({ type, passed, message }) => ({ type, passed, message })) };
    if (failing.length === 0) {
      return { gate: KIND, name: KIND, state: "passed", reason: outcomes.map((o) => o.message).join("; "), remedy: null, details };
    }
    return {
      gate: KIND, name: KIND, state: "failed",
      reason: failing.map((o) => o.message).join("; "),
      remedy: [...new Set(failing.map((o) => o.remedy as string))].join("; ") + ", or change the environment's policy",
      details,
    };
  },
};
