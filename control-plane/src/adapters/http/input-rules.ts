// Rules every value the API takes must obey, whatever its route's schema says. They apply to all routes at once,
// so a route cannot forget them:
//
//  - No NUL character in any string (path parameters, query parameters, body strings and object keys, including
//    free-form objects such as settings, config, labels and provenance). PostgreSQL cannot store U+0000 in text or
//    jsonb, and no Ferry name, reference or message needs it.
//  - JSON bodies nest at most MAX_JSON_DEPTH levels. Deeper documents would exhaust recursion in the code that
//    hashes, canonicalises or stores them; no request Ferry understands comes near the bound.
//  - No "__proto__" or "constructor" key anywhere in a body. JSON.parse makes them plain own properties, but code
//    that merges or spreads such an object can alter prototypes; there is no legitimate use for them in Ferry.
import { FerryError } from "../../domain/errors.js";

export const MAX_JSON_DEPTH = 64;

const FORBIDDEN_KEYS = new Set(["__proto__", "constructor"]);

const pathOf = (parts: readonly (string | number)[]): string =>
  parts.reduce<string>((acc, p) => (typeof p === "number" ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), "");

/** Parses a JSON request body and checks it against the rules above; throws FerryError when it breaks one. */
export function parseJsonBody(text: string): unknown {
  if (text.trim().length === 0) throw new FerryError("MALFORMED_JSON", "the request body is empty; send a JSON object");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new FerryError("MALFORMED_JSON", `the request body is not valid JSON: ${(err as Error).message}`);
  }
  inspect(value, [], 0);
  return value;
}

function inspect(value: unknown, path: (string | number)[], depth: number): void {
  if (typeof value === "string") {
    if (value.includes("\u0000")) throw nul(path.length ? pathOf(path) : "body", "body");
    return;
  }
  if (typeof value !== "object" || value === null) return;
  if (depth >= MAX_JSON_DEPTH) {
    throw new FerryError("VALIDATION_FAILED", `${path.length ? pathOf(path) : "body"}: the body nests deeper than ${MAX_JSON_DEPTH} levels`, {
      field: pathOf(path) || "body",
      in: "body",
      maxDepth: MAX_JSON_DEPTH,
    });
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      inspect(value[i], path, depth + 1);
      path.pop();
    }
    return;
  }
  for (const key of Object.keys(value)) {
    path.push(key);
    if (FORBIDDEN_KEYS.has(key)) {
      const field = pathOf(path);
      throw new FerryError("VALIDATION_FAILED", `${field}: the key "${key}" is not accepted in a request body; rename the field`, { field, in: "body" });
    }
    if (key.includes("\u0000")) throw nul(pathOf(path.slice(0, -1)) || "body", "body");
    inspect((value as Record<string, unknown>)[key], path, depth + 1);
    path.pop();
  }
}

function nul(field: string, where: string): FerryError {
  return new FerryError("VALIDATION_FAILED", `${field}: must not contain a NUL character (\\u0000)`, { field, in: where });
}

/** Refuses a NUL character in path or query parameters (already percent-decoded by the router). */
export function checkParameters(values: unknown, where: "path" | "query"): void {
  if (typeof values !== "object" || values === null) return;
  for (const [name, v] of Object.entries(values as Record<string, unknown>)) {
    const list = Array.isArray(v) ? v : [v];
    if (name.includes("\u0000") || list.some((s) => typeof s === "string" && s.includes("\u0000"))) throw nul(name.replaceAll("\u0000", "\\u0000"), where);
  }
}
