// A small declarative schema for target configs: the single definition of what a target kind's config may say.
// The control plane checks a target's config with it when the target is created or changed, and the agent's driver
// checks the config in every task with the very same schema before it touches anything, so the two can never
// disagree about what is valid.
//
// The checker refuses unknown fields (a misspelt "contianer" must not be silently ignored), missing required fields,
// wrong types, NUL bytes, and values out of bounds, and names the field path in every message. Cross-field rules
// ("url is required when type is http") are `rules` on an object: small pure functions over the checked object.
//
// Why not JSON Schema: the rules here need custom checks (reserved name suffixes, URL parsing) and every message must
// name one field in words an operator understands; a 70-line checker does that, and `describeSchema` renders the
// same definitions into the docs.

export type FieldSpec =
  | {
      type: "string";
      required?: boolean;
      pattern?: RegExp;
      hint?: string;
      /** Default 1024. */
      maxLength?: number;
      enum?: readonly string[];
      /** Extra check; returns the problem, or undefined when the value is fine. */
      check?: (value: string) => string | undefined;
      doc?: string;
    }
  | { type: "integer"; required?: boolean; min?: number; max?: number; doc?: string }
  | { type: "boolean"; required?: boolean; doc?: string }
  | { type: "string-map"; required?: boolean; keyPattern?: RegExp; keyHint?: string; maxItems?: number; doc?: string }
  | { type: "string-list"; required?: boolean; maxItems?: number; minItems?: number; doc?: string }
  | { type: "object"; required?: boolean; fields: Record<string, FieldSpec>; rules?: readonly ObjectRule[]; doc?: string }
  | { type: "list"; required?: boolean; maxItems?: number; items: Record<string, FieldSpec>; rules?: readonly ObjectRule[]; doc?: string };

/** A cross-field rule: returns [field, problem] when the object breaks it. */
export type ObjectRule = (obj: Record<string, unknown>) => [field: string, problem: string] | undefined;

export interface ObjectSchema {
  fields: Record<string, FieldSpec>;
  rules?: readonly ObjectRule[];
}

/** A config that does not fit its schema. `path` names the field ("config.healthCheck.url"). */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`);
  }
}

const DEFAULT_MAX_STRING = 1024;
const DEFAULT_MAX_ITEMS = 256;

const fail = (path: string, problem: string): never => {
  throw new ConfigError(path, problem);
};

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
}

/**
 * Checks `value` against an object schema and returns a deep copy of it (so a caller can keep the result without
 * the input's later changes). Throws ConfigError naming the first field at fault.
 */
export function checkObject(value: unknown, schema: ObjectSchema, path: string): Record<string, unknown> {
  if (!isPlainObject(value)) return fail(path, "must be an object");
  for (const key of Object.keys(value)) {
    if (!Object.hasOwn(schema.fields, key)) fail(`${path}.${key}`, `unknown field (known: ${Object.keys(schema.fields).join(", ")})`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(schema.fields)) {
    const v = value[key];
    const p = `${path}.${key}`;
    if (v === undefined || v === null) {
      if (spec.required) fail(p, "is required");
      continue;
    }
    out[key] = checkField(v, spec, p);
  }
  for (const rule of schema.rules ?? []) {
    const broken = rule(out);
    if (broken) fail(`${path}.${broken[0]}`, broken[1]);
  }
  return out;
}

function checkString(v: unknown, p: string, maxLength: number): string {
  if (typeof v !== "string" || v.length === 0) return fail(p, "must be a non-empty string");
  if (v.length > maxLength) return fail(p, `must be at most ${maxLength} characters`);
  if (v.includes("\0")) return fail(p, "must not contain NUL bytes");
  return v;
}

function checkField(v: unknown, spec: FieldSpec, p: string): unknown {
  switch (spec.type) {
    case "string": {
      const s = checkString(v, p, spec.maxLength ?? DEFAULT_MAX_STRING);
      if (spec.enum && !spec.enum.includes(s)) return fail(p, `must be one of ${spec.enum.join(", ")}`);
      if (spec.pattern && !spec.pattern.test(s)) return fail(p, spec.hint ?? `does not match ${String(spec.pattern)}`);
      const problem = spec.check?.(s);
      if (problem) fail(p, problem);
      return s;
    }
    case "integer":
      if (typeof v !== "number" || !Number.isSafeInteger(v)) return fail(p, "must be a whole number");
      if (spec.min !== undefined && v < spec.min) return fail(p, `must be at least ${spec.min}`);
      if (spec.max !== undefined && v > spec.max) return fail(p, `must be at most ${spec.max}`);
      return v;
    case "boolean":
      if (typeof v !== "boolean") fail(p, "must be true or false");
      return v;
    case "string-map": {
      if (!isPlainObject(v)) return fail(p, "must be an object of strings");
      const entries = Object.entries(v);
      if (entries.length > (spec.maxItems ?? DEFAULT_MAX_ITEMS)) fail(p, `must have at most ${spec.maxItems ?? DEFAULT_MAX_ITEMS} entries`);
      const out: Record<string, string> = {};
      for (const [k, s] of entries) {
        if (k.includes("\0") || (spec.keyPattern && !spec.keyPattern.test(k))) fail(`${p}.${k.replace(/\0/g, "\\0")}`, spec.keyHint ?? "is not a valid key");
        if (typeof s !== "string") fail(`${p}.${k}`, "must be a string");
        if ((s as string).includes("\0")) fail(`${p}.${k}`, "must not contain NUL bytes");
        out[k] = s as string;
      }
      return out;
    }
    case "string-list": {
      if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) return fail(p, "must be a list of strings");
      if (v.length > (spec.maxItems ?? DEFAULT_MAX_ITEMS)) fail(p, `must have at most ${spec.maxItems ?? DEFAULT_MAX_ITEMS} items`);
      if (spec.minItems !== undefined && v.length < spec.minItems) fail(p, `must have at least ${spec.minItems} item${spec.minItems === 1 ? "" : "s"}`);
      (v as string[]).forEach((s, i) => {
        if (s.includes("\0")) fail(`${p}[${i}]`, "must not contain NUL bytes");
      });
      return [...(v as string[])];
    }
    case "object":
      return checkObject(v, spec, p);
    case "list":
      if (!Array.isArray(v)) return fail(p, "must be a list");
      if (v.length > (spec.maxItems ?? DEFAULT_MAX_ITEMS)) fail(p, `must have at most ${spec.maxItems ?? DEFAULT_MAX_ITEMS} items`);
      return v.map((item, i) => checkObject(item, { fields: spec.items, ...(spec.rules ? { rules: spec.rules } : {}) }, `${p}[${i}]`));
  }
}

/** One line per field, for the docs: `container (string, required): …`. */
export function describeSchema(schema: ObjectSchema, prefix = ""): string[] {
  const lines: string[] = [];
  for (const [key, spec] of Object.entries(schema.fields)) {
    const name = `${prefix}${key}`;
    const bits: string[] = [spec.type];
    if (spec.required) bits.push("required");
    if (spec.type === "string" && spec.enum) bits.push(`one of ${spec.enum.join(", ")}`);
    if (spec.type === "integer" && (spec.min !== undefined || spec.max !== undefined)) bits.push(`${spec.min ?? "…"}–${spec.max ?? "…"}`);
    lines.push(`${name} (${bits.join(", ")})${spec.doc ? `: ${spec.doc}` : ""}`);
    if (spec.type === "object") lines.push(...describeSchema(spec, `${name}.`));
    if (spec.type === "list") lines.push(...describeSchema({ fields: spec.items }, `${name}[].`));
  }
  return lines;
}
