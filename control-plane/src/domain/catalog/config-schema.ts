// A small declarative checker for target configs. Each kind describes its fields once; the checker refuses unknown
// fields (a misspelt "contianer" must not be silently ignored), missing required fields and wrong types, and names
// the field path in every message.
import { FerryError } from "../errors.js";

export type FieldSpec =
  | { type: "string"; required?: boolean; pattern?: RegExp; hint?: string; maxLength?: number; enum?: readonly string[] }
  | { type: "integer"; required?: boolean; min?: number; max?: number }
  | { type: "boolean"; required?: boolean }
  | { type: "string-map"; required?: boolean; keyPattern?: RegExp }
  | { type: "string-list"; required?: boolean; maxItems?: number }
  | { type: "object"; required?: boolean; fields: Record<string, FieldSpec> }
  | { type: "list"; required?: boolean; maxItems?: number; items: Record<string, FieldSpec> };

const fail = (path: string, msg: string): never => {
  throw new FerryError("VALIDATION_FAILED", `${path}: ${msg}`, { field: path });
};

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function checkObject(value: unknown, fields: Record<string, FieldSpec>, path: string): Record<string, unknown> {
  if (!isPlainObject(value)) return fail(path, "must be an object");
  for (const key of Object.keys(value)) {
    if (!Object.hasOwn(fields, key)) fail(`${path}.${key}`, `unknown field (known: ${Object.keys(fields).join(", ")})`);
  }
  for (const [key, spec] of Object.entries(fields)) {
    const v = value[key];
    const p = `${path}.${key}`;
    if (v === undefined || v === null) {
      if (spec.required) fail(p, "is required");
      continue;
    }
    checkField(v, spec, p);
  }
  return value;
}

function checkField(v: unknown, spec: FieldSpec, p: string): void {
  switch (spec.type) {
    case "string":
      if (typeof v !== "string" || v.length === 0) return fail(p, "must be a non-empty string");
      if (v.length > (spec.maxLength ?? 1024)) return fail(p, `must be at most ${spec.maxLength ?? 1024} characters`);
      if (spec.enum && !spec.enum.includes(v)) return fail(p, `must be one of ${spec.enum.join(", ")}`);
      if (spec.pattern && !spec.pattern.test(v)) return fail(p, spec.hint ?? `does not match ${String(spec.pattern)}`);
      return;
    case "integer":
      if (typeof v !== "number" || !Number.isInteger(v)) return fail(p, "must be a whole number");
      if (spec.min !== undefined && v < spec.min) return fail(p, `must be at least ${spec.min}`);
      if (spec.max !== undefined && v > spec.max) return fail(p, `must be at most ${spec.max}`);
      return;
    case "boolean":
      if (typeof v !== "boolean") fail(p, "must be true or false");
      return;
    case "string-map":
      if (!isPlainObject(v)) return fail(p, "must be an object of strings");
      for (const [k, s] of Object.entries(v)) {
        if (spec.keyPattern && !spec.keyPattern.test(k)) fail(`${p}.${k}`, "is not a valid key");
        if (typeof s !== "string") fail(`${p}.${k}`, "must be a string");
      }
      return;
    case "string-list":
      if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) return fail(p, "must be a list of strings");
      if (v.length > (spec.maxItems ?? 256)) fail(p, `must have at most ${spec.maxItems ?? 256} items`);
      return;
    case "object":
      checkObject(v, spec.fields, p);
      return;
    case "list":
      if (!Array.isArray(v)) return fail(p, "must be a list");
      if (v.length > (spec.maxItems ?? 256)) fail(p, `must have at most ${spec.maxItems ?? 256} items`);
      v.forEach((item, i) => checkObject(item, spec.items, `${p}[${i}]`));
      return;
  }
}
