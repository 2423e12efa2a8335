// Config checking for the control plane's own settings (gate settings) and target configs: the contract's
// declarative checker (@ferry/contract config-schema.ts), with its ConfigError turned into the API's
// VALIDATION_FAILED naming the field.
import { checkObject as checkContractObject, ConfigError, type FieldSpec, type ObjectRule } from "@ferry/contract";

import { FerryError } from "../errors.js";

export type { FieldSpec, ObjectRule };

/** Runs `fn`, turning a ConfigError into VALIDATION_FAILED with the field path in details. */
export function asValidationError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ConfigError) throw new FerryError("VALIDATION_FAILED", err.message, { field: err.path });
    throw err;
  }
}

/** Checks `value` against the fields and returns the checked copy; throws VALIDATION_FAILED naming the field. */
export function checkObject(value: unknown, fields: Record<string, FieldSpec>, path: string, rules?: readonly ObjectRule[]): Record<string, unknown> {
  return asValidationError(() => checkContractObject(value, { fields, ...(rules ? { rules } : {}) }, path));
}
