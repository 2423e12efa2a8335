// Names and labels that operators choose. Kept to a DNS-label-like alphabet so they are safe in URLs, logs, file
// names and container labels without escaping.
import { FerryError } from "../errors.js";

const NAME = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/;
const LABEL_KEY = /^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$/i;
const LABEL_VALUE = /^[A-Za-z0-9._:/@+-]{0,128}$/;

export function checkName(value: string, field: string): string {
  if (!NAME.test(value)) {
    throw new FerryError(
      "VALIDATION_FAILED",
      `${field}: "${value}" is not a valid name (lowercase letters, digits, '.', '_' and '-', at most 63 characters, starting and ending with a letter or digit)`,
      { field },
    );
  }
  return value;
}

export function checkLabels(labels: Record<string, string>, field = "labels"): Record<string, string> {
  const keys = Object.keys(labels);
  if (keys.length > 32) throw new FerryError("VALIDATION_FAILED", `${field}: at most 32 labels`, { field });
  for (const [k, v] of Object.entries(labels)) {
    if (!LABEL_KEY.test(k)) throw new FerryError("VALIDATION_FAILED", `${field}: "${k}" is not a valid label key`, { field });
    if (typeof v !== "string" || !LABEL_VALUE.test(v)) {
      throw new FerryError("VALIDATION_FAILED", `${field}: the value of "${k}" is not a valid label value`, { field });
    }
  }
  return labels;
}

/** Parses "k=v" pairs from the command line. */
export function parseLabelPairs(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf("=");
    if (i <= 0) throw new FerryError("VALIDATION_FAILED", `label "${p}" is not of the form key=value`, { field: "labels" });
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  return checkLabels(out);
}
