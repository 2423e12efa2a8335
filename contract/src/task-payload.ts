// The signed body of a task: what the control plane asks one agent to do on one target. Canonical JSON (RFC 8785),
// signed in a DSSE envelope by pki; every field is covered by the signature.
//
// Versions. The payload type names the version, so a signature over one version can never be read as another:
//   v1  application/vnd.ferry.task.v1+json  deploy/rollback/inspect; runs every deploy phase (all-at-once)
//   v2  application/vnd.ferry.task.v2+json  v1 plus `phases`: the ordered run of phases the task performs; `state`:
//       the driver's state an earlier step of the same rollout left (its result's details.state), carried back so a
//       later step (switch, retire, restore) picks up exactly what start did; and the `route` action with `route`:
//       one router operation (weights, measure, maintenance) on a routed target; weights may carry an A/B `split`
// An agent advertises the versions it reads (HostFacts.task_payload_versions; an agent that says nothing reads v1
// only). The control plane signs the highest version both sides speak. A v1 task means exactly what a v2 task with
// the all-at-once phases means, so agents that speak only v1 keep receiving all-at-once deploys; work that needs
// another run of phases (a strategy's separate steps) is refused at request time for such an agent, never sent.
// The parser is exact: an unknown field is refused (a field this agent does not know could be one meant to
// restrict it), and so is an unknown version.
import { isDigest } from "./images.js";
import { isPlainObject } from "./config-schema.js";
import { ALL_AT_ONCE_PHASES, phasesProblem, TASK_ACTIONS, type Phase, type TaskAction } from "./phases.js";

export const TASK_PAYLOAD_TYPES = {
  1: "application/vnd.ferry.task.v1+json",
  2: "application/vnd.ferry.task.v2+json",
} as const;
export type TaskPayloadVersion = keyof typeof TASK_PAYLOAD_TYPES;
/** What this build of Ferry reads and writes, oldest first. */
export const TASK_PAYLOAD_VERSIONS: readonly TaskPayloadVersion[] = [1, 2];

export interface TaskImage {
  component: string;
  repository: string;
  /** "sha256:" + 64 lowercase hex. */
  digest: string;
  /** repository@digest, exactly. */
  ref: string;
}

export interface TaskTarget {
  id: string;
  name: string;
  kind: string;
  /** The target's config; its kind's schema validates it on both sides. */
  config: Record<string, unknown>;
}

export interface TaskPayload {
  v: TaskPayloadVersion;
  taskId: string;
  deploymentId: string;
  /** The audience: the only agent allowed to run this task. */
  agentId: string;
  /** ms since the epoch. */
  issuedAt: number;
  /** ms since the epoch; the agent refuses the task after this (plus a clock-skew leeway). */
  notAfter: number;
  /** base64url (no padding) of 16 random bytes; the agent's journal refuses a nonce it has seen for another task. */
  nonce: string;
  action: TaskAction;
  target: TaskTarget;
  release: { id: string; name: string; version: string } | null;
  images: TaskImage[];
  /** v2 only (and required there for deploy and rollback): the phases to run, in order. */
  phases?: Phase[];
  /** v2 only: the driver state an earlier step returned (plain JSON, at most MAX_STATE_BYTES). */
  state?: Record<string, unknown>;
  /** v2 only, and required with action "route": what to do on the router. */
  route?: RouteOperation;
}

/**
 * A router operation on a routed target. Weights are for the slot the rollout started (`newWeight`, 0–100; the
 * stable slot gets the rest), so a canary step never needs to know which colour is which.
 */
export type RouteOperation = { op: "weights"; newWeight: number; split?: RouteSplit } | { op: "measure" } | { op: "maintenance"; message: string | null };

/**
 * An A/B split on a weights operation: a request reaches the new slot when the value of its cookie or header `name`
 * is on the allowlist, or hashes into the first `newWeight` of 100 buckets (the same value always lands in the same
 * bucket). A request without the cookie or header reaches the stable slot (docs/rollouts.md#ab-split).
 */
export interface RouteSplit {
  by: "cookie" | "header";
  /** An HTTP token (a cookie or header name), at most 128 characters. */
  name: string;
  /** At most MAX_SPLIT_ALLOWLIST values, each 1–256 printable ASCII characters without spaces. */
  allowlist: string[];
}

export const MAX_SPLIT_ALLOWLIST = 100;
/** An HTTP token (RFC 9110): what a cookie or header name may be. */
export const HTTP_TOKEN_RE = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/;
/** An allowlist value: printable ASCII without spaces. */
export const SPLIT_VALUE_RE = /^[\x21-\x7e]{1,256}$/;

/** Bound on the carried driver state (canonical JSON bytes): ids, names and flags, never data. */
export const MAX_STATE_BYTES = 64 * 1024;

/** The payload is not a task this version of Ferry understands. Agents report it as TASK_MALFORMED. */
export class TaskPayloadError extends Error {
  override readonly name = "TaskPayloadError";
}

const NONCE_RE = /^[A-Za-z0-9_-]{22}$/;
const FIELDS_V1 = ["v", "taskId", "deploymentId", "agentId", "issuedAt", "notAfter", "nonce", "action", "target", "release", "images"];
const FIELDS_V2 = [...FIELDS_V1, "phases", "state", "route"];
/** Bounds on what a payload may carry: a task is small. */
const MAX_ID = 128;
const MAX_IMAGES = 64;

export function payloadTypeOf(v: TaskPayloadVersion): string {
  return TASK_PAYLOAD_TYPES[v];
}

export function versionOfPayloadType(type: string): TaskPayloadVersion | undefined {
  for (const v of TASK_PAYLOAD_VERSIONS) if (TASK_PAYLOAD_TYPES[v] === type) return v;
  return undefined;
}

/** The phases a task runs: its own (v2), or all-at-once (v1). */
export function taskPhases(p: Pick<TaskPayload, "phases">): readonly Phase[] {
  return p.phases ?? ALL_AT_ONCE_PHASES;
}

/**
 * The highest payload version both this build and an agent read, or undefined when they share none. `advertised`
 * empty means an agent from before versions were advertised: v1.
 */
export function negotiatePayloadVersion(advertised: readonly number[]): TaskPayloadVersion | undefined {
  const theirs = advertised.length === 0 ? [1] : advertised;
  const common = TASK_PAYLOAD_VERSIONS.filter((v) => theirs.includes(v));
  return common.length > 0 ? common[common.length - 1] : undefined;
}

/**
 * Checks that `value` is exactly a TaskPayload of the version its payload type names: every field present with its
 * type, no unknown field, every image pinned by digest. target.config is checked by the kind's schema, not here.
 */
export function parseTaskPayload(value: unknown, payloadType: string = TASK_PAYLOAD_TYPES[1]): TaskPayload {
  const bad = (what: string): never => {
    throw new TaskPayloadError(`task payload: ${what}`);
  };
  const exact = (obj: Record<string, unknown>, keys: readonly string[], where: string): void => {
    for (const k of Object.keys(obj)) if (!keys.includes(k)) bad(`unknown field ${where}${k}`);
  };
  const str = (obj: Record<string, unknown>, key: string, where: string, max = MAX_ID): string => {
    const v = obj[key];
    if (typeof v !== "string" || v === "") bad(`${where}${key} must be a non-empty string`);
    if ((v as string).length > max || (v as string).includes("\0")) bad(`${where}${key} must be at most ${max} characters, without NUL`);
    return v as string;
  };
  const time = (obj: Record<string, unknown>, key: string): number => {
    const v = obj[key];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) bad(`${key} must be a time in ms`);
    return v as number;
  };

  const version = versionOfPayloadType(payloadType);
  if (version === undefined) return bad(`unsupported payload type ${JSON.stringify(payloadType)}`);
  if (!isPlainObject(value)) return bad("not a JSON object");
  if (value.v !== version) bad(`version ${JSON.stringify(value.v)} does not match the payload type (v${version})`);
  exact(value, version === 1 ? FIELDS_V1 : FIELDS_V2, "");
  const taskId = str(value, "taskId", "");
  const deploymentId = str(value, "deploymentId", "");
  const agentId = str(value, "agentId", "");
  const issuedAt = time(value, "issuedAt");
  const notAfter = time(value, "notAfter");
  if (notAfter < issuedAt) bad("notAfter is before issuedAt");
  const nonce = str(value, "nonce", "");
  if (!NONCE_RE.test(nonce)) bad("nonce must be 16 bytes, base64url without padding");
  const action = value.action;
  if (typeof action !== "string" || !(TASK_ACTIONS as readonly string[]).includes(action)) bad(`unknown action ${JSON.stringify(action)}`);

  const t = value.target;
  if (!isPlainObject(t)) return bad("target must be an object");
  exact(t, ["id", "name", "kind", "config"], "target.");
  if (!isPlainObject(t.config)) bad("target.config must be an object");
  const target: TaskTarget = {
    id: str(t, "id", "target."),
    name: str(t, "name", "target."),
    kind: str(t, "kind", "target."),
    config: t.config as Record<string, unknown>,
  };

  let release: TaskPayload["release"] = null;
  if (value.release !== null) {
    const r = value.release;
    if (!isPlainObject(r)) return bad("release must be an object or null");
    exact(r, ["id", "name", "version"], "release.");
    release = { id: str(r, "id", "release."), name: str(r, "name", "release.", 256), version: str(r, "version", "release.", 256) };
  }

  if (!Array.isArray(value.images)) return bad("images must be an array");
  if (value.images.length > MAX_IMAGES) bad(`images must hold at most ${MAX_IMAGES} images`);
  const images = (value.images as unknown[]).map((img, i): TaskImage => {
    const where = `images[${i}].`;
    if (!isPlainObject(img)) return bad(`images[${i}] must be an object`);
    exact(img, ["component", "repository", "digest", "ref"], where);
    const component = str(img, "component", where);
    const repository = str(img, "repository", where, 512);
    const digest = str(img, "digest", where);
    const ref = str(img, "ref", where, 600);
    if (repository.includes("@") || /\s/.test(repository)) bad(`${where}repository ${JSON.stringify(repository)} is not a repository name`);
    if (!isDigest(digest)) bad(`${where}digest ${JSON.stringify(digest)} is not sha256:<64 hex>`);
    if (ref !== `${repository}@${digest}`) bad(`${where}ref ${JSON.stringify(ref)} is not repository@digest`);
    return { component, repository, digest, ref };
  });

  const payload: TaskPayload = { v: version, taskId, deploymentId, agentId, issuedAt, notAfter, nonce, action: action as TaskAction, target, release, images };
  if (version === 2) {
    if (action === "route") {
      if (value.phases !== undefined) bad("phases: a route task runs no phase");
      payload.route = parseRoute(value.route, bad);
    } else {
      if (value.route !== undefined) bad(`route: only a route task carries one, not a ${String(action)} task`);
      const phases = value.phases;
      if (!Array.isArray(phases) || phases.some((p) => typeof p !== "string")) return bad("phases must be a list of phase names");
      const problem = phasesProblem(phases as string[]);
      if (problem) bad(`phases ${problem}`);
      payload.phases = [...(phases as Phase[])];
    }
    if (value.state !== undefined) {
      if (!isPlainObject(value.state)) bad("state must be an object");
      const bytes = Buffer.byteLength(JSON.stringify(value.state), "utf8");
      if (bytes > MAX_STATE_BYTES) bad(`state must be at most ${MAX_STATE_BYTES} bytes of JSON (it is ${bytes})`);
      payload.state = value.state as Record<string, unknown>;
    }
  } else if (action === "route") bad("action route needs payload v2");
  return payload;
}

function parseRoute(r: unknown, bad: (what: string) => never): RouteOperation {
  if (!isPlainObject(r)) return bad("route must be an object with an op");
  switch (r.op) {
    case "weights": {
      for (const k of Object.keys(r)) if (k !== "op" && k !== "newWeight" && k !== "split") bad(`unknown field route.${k}`);
      const w = r.newWeight;
      if (typeof w !== "number" || !Number.isInteger(w) || w < 0 || w > 100) return bad("route.newWeight must be a whole number from 0 to 100");
      return r.split === undefined ? { op: "weights", newWeight: w } : { op: "weights", newWeight: w, split: parseSplit(r.split, bad) };
    }
    case "measure":
      for (const k of Object.keys(r)) if (k !== "op") bad(`unknown field route.${k}`);
      return { op: "measure" };
    case "maintenance": {
      for (const k of Object.keys(r)) if (k !== "op" && k !== "message") bad(`unknown field route.${k}`);
      const m = r.message;
      if (m !== null && (typeof m !== "string" || !/^[\x20\x21\x23-\x5b\x5d-\x7e]{1,256}$/.test(m))) {
        return bad('route.message must be null (maintenance off) or 1–256 printable ASCII characters without " and \\');
      }
      return { op: "maintenance", message: m };
    }
    default:
      return bad(`route.op must be weights, measure or maintenance, not ${JSON.stringify(r.op)}`);
  }
}

function parseSplit(sp: unknown, bad: (what: string) => never): RouteSplit {
  if (!isPlainObject(sp)) return bad("route.split must be an object {by, name, allowlist}");
  for (const k of Object.keys(sp)) if (k !== "by" && k !== "name" && k !== "allowlist") bad(`unknown field route.split.${k}`);
  if (sp.by !== "cookie" && sp.by !== "header") bad("route.split.by must be cookie or header");
  if (typeof sp.name !== "string" || !HTTP_TOKEN_RE.test(sp.name)) bad("route.split.name must be a cookie or header name (an HTTP token of at most 128 characters)");
  const al = sp.allowlist;
  if (!Array.isArray(al) || al.length > MAX_SPLIT_ALLOWLIST) return bad(`route.split.allowlist must be a list of at most ${MAX_SPLIT_ALLOWLIST} values`);
  al.forEach((v: unknown, i) => {
    if (typeof v !== "string" || !SPLIT_VALUE_RE.test(v)) bad(`route.split.allowlist[${i}] must be 1 to 256 printable ASCII characters without spaces`);
  });
  return { by: sp.by, name: sp.name, allowlist: [...(al as string[])] };
}
