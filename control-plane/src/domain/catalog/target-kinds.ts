// The kinds of target this control plane accepts, one registration line each. A kind's descriptor (config schema,
// capabilities, how its images are chosen) lives in @ferry/contract and is the same one the agent's driver uses, so
// the control plane refuses at the door exactly the configs an agent would refuse at deploy time.
import { composeKind, dockerKind, ecsKind, nomadKind, parseTargetConfig, sshKind, winrmKind, type TargetKindDescriptor } from "@ferry/contract";

import { FerryError } from "../errors.js";
import { asValidationError } from "./config-schema.js";

const KINDS: readonly TargetKindDescriptor<unknown>[] = [
  dockerKind,
  composeKind,
  ecsKind,
  nomadKind,
  sshKind,
  winrmKind,
];

export const TARGET_KINDS: readonly string[] = KINDS.map((k) => k.kind);
export type TargetKind = string;

export function isTargetKind(s: string): boolean {
  return TARGET_KINDS.includes(s);
}

/** The descriptor of a kind; UNKNOWN_TARGET_KIND when the control plane does not accept it. */
export function targetKind(kind: string): TargetKindDescriptor<unknown> {
  const d = KINDS.find((k) => k.kind === kind);
  if (!d) throw new FerryError("UNKNOWN_TARGET_KIND", `kind: "${kind}" is not a target kind (one of ${TARGET_KINDS.join(", ")})`, { field: "kind" });
  return d;
}

/** Validates a target's config for its kind with the kind's schema; throws VALIDATION_FAILED naming the field. */
export function checkTargetConfig(kind: string, config: unknown): Record<string, unknown> {
  const descriptor = targetKind(kind);
  return asValidationError(() => parseTargetConfig(descriptor, config) as Record<string, unknown>);
}
