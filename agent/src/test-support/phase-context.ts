// What driver tests build for every run: a phase context whose progress lines are kept, and a way to await a run
// that must fail with a DriverError.
import assert from "node:assert/strict";

import { DriverError, type ImagePin, type PhaseContext, type TargetRef } from "../drivers/driver.js";

let n = 0;

/** A context for one task on `target`, its config parsed by the driver's own `parse`; each call is a new task. */
export function phaseContext<Config>(
  target: TargetRef,
  parse: (raw: Record<string, unknown>) => Config,
  images: ImagePin[],
  opts: { signal?: AbortSignal; action?: "deploy" | "rollback" } = {},
): PhaseContext<Config> & { lines: string[] } {
  const lines: string[] = [];
  n++;
  return {
    taskId: `task-${n}`,
    deploymentId: `dep-${n}`,
    action: opts.action ?? "deploy",
    release: { id: `rel-${n}`, name: "shop", version: `1.${n}` },
    target,
    config: parse(target.config),
    images,
    credentials: () => undefined,
    signal: opts.signal ?? new AbortController().signal,
    progress: { step: () => {}, log: (l) => lines.push(l) },
    lines,
  };
}

/** The DriverError `p` fails with; the test fails if it succeeds or throws anything else. */
export async function driverFailure(p: Promise<unknown>): Promise<DriverError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof DriverError, `expected a DriverError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected the task to fail");
}
