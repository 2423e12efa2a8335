// Turns a JSON-schema validation failure into a message a person can act on: "<field>: <what is wrong>", e.g.
// "state: must be one of queued, running, succeeded, failed, cancelled". Validator wording ("must be equal to one of
// the allowed values", "querystring/state") never reaches a client. details.field names the field and details.in
// says where it was (body, query or path).
import type { FastifySchemaValidationError } from "fastify";
import { FerryError } from "../../domain/errors.js";

const PARTS: Record<string, string> = { body: "body", querystring: "query", params: "path", headers: "headers" };

const TYPE_NAMES: Record<string, string> = {
  string: "a string",
  integer: "a whole number",
  number: "a number",
  boolean: "true or false",
  object: "an object",
  array: "an array",
  null: "null",
};

function fieldOf(instancePath: string): string {
  return instancePath
    .split("/")
    .slice(1)
    .map((seg) => seg.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((acc, seg) => (/^\d+$/.test(seg) ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg), "");
}

const join = (items: readonly unknown[]): string => items.map((v) => (typeof v === "string" ? v : JSON.stringify(v))).join(", ");
const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

function problem(e: FastifySchemaValidationError): string {
  const p = e.params;
  switch (e.keyword) {
    case "enum":
      return `must be one of ${join(p["allowedValues"] as unknown[])}`;
    case "const":
      return `must be ${String(p["allowedValue"])}`;
    case "type": {
      const types = String(p["type"]).split(",");
      return `must be ${types.map((t) => TYPE_NAMES[t] ?? t).join(" or ")}`;
    }
    case "minLength":
      return p["limit"] === 1 ? "must not be empty" : `must be at least ${plural(Number(p["limit"]), "character")} long`;
    case "maxLength":
      return `must be at most ${plural(Number(p["limit"]), "character")} long`;
    case "minimum":
      return `must be at least ${String(p["limit"])}`;
    case "maximum":
      return `must be at most ${String(p["limit"])}`;
    case "exclusiveMinimum":
      return `must be more than ${String(p["limit"])}`;
    case "exclusiveMaximum":
      return `must be less than ${String(p["limit"])}`;
    case "pattern":
      return `is not of the accepted form (${String(p["pattern"])})`;
    case "minItems":
      return `must have at least ${plural(Number(p["limit"]), "item")}`;
    case "maxItems":
      return `must have at most ${plural(Number(p["limit"]), "item")}`;
    case "uniqueItems":
      return `must not repeat an item (items ${String(p["j"])} and ${String(p["i"])} are the same)`;
    case "minProperties":
      return `must have at least ${plural(Number(p["limit"]), "entry", "entries")}`;
    case "maxProperties":
      return `must have at most ${plural(Number(p["limit"]), "entry", "entries")}`;
    case "format":
      return `must be a valid ${String(p["format"])}`;
    default:
      return "is not valid";
  }
}

/** The first schema error of a request part ("body", "querystring", "params", "headers") as a FerryError. */
export function schemaError(errors: readonly FastifySchemaValidationError[], context: string | undefined): FerryError {
  const where = PARTS[context ?? "body"] ?? context ?? "body";
  const first = errors[0];
  if (!first) return new FerryError("VALIDATION_FAILED", `${where}: is not valid`, { in: where });
  const path = fieldOf(first.instancePath);
  const p = first.params;
  if (first.keyword === "additionalProperties") {
    const extra = String(p["additionalProperty"]);
    const field = path ? `${path}.${extra}` : extra;
    const noun = where === "query" ? "parameter" : "field";
    return new FerryError("VALIDATION_FAILED", `${path || where}: unknown ${noun} "${extra}"`, { field, in: where });
  }
  if (first.keyword === "required") {
    const missing = String(p["missingProperty"]);
    const field = path ? `${path}.${missing}` : missing;
    return new FerryError("VALIDATION_FAILED", `${field}: is required`, { field, in: where });
  }
  const field = path || where;
  return new FerryError("VALIDATION_FAILED", `${field}: ${problem(first)}`, { field, in: where });
}
