// The gate of a test suite that needs the Docker Engine and the registry (and whatever else it names): it skips each
// test loudly where they are missing, and under CI=true a missing engine fails every test instead (scripts/test-env.sh
// starts one). One definition for the driver and engine-client suites.
import type { TestContext } from "node:test";

import { dockerSkipReason, loudSkip } from "./docker.js";
import { registrySkipReason } from "./registry.js";

export interface EngineSuite {
  /** Why the suite cannot run here, or false. */
  readonly skipReason: string | false;
  /** Whether the suite can run (for hooks: nothing to set up or clean when it cannot). */
  readonly runnable: boolean;
  /** Skips (loudly) or fails the test when the suite cannot run here; true when it can. */
  canRun(t: TestContext): boolean;
}

/** `more` is asked only when the engine and the registry are there: another reason to skip, or false. */
export async function engineSuite(suite: string, more?: () => Promise<string | false>): Promise<EngineSuite> {
  let skipReason: string | false = false;
  let setupError: unknown;
  try {
    skipReason = (await dockerSkipReason(suite)) || registrySkipReason();
    if (!skipReason && more) skipReason = await more();
    // dockerSkipReason printed its own banner.
    if (skipReason && !skipReason.startsWith("Docker Engine not available")) loudSkip(suite, skipReason);
  } catch (err) {
    // CI=true and no engine (or registry): every test fails with this.
    setupError = err;
  }
  return {
    skipReason,
    runnable: !skipReason && setupError === undefined,
    canRun(t: TestContext): boolean {
      if (setupError) throw setupError;
      if (skipReason) {
        t.skip(skipReason);
        return false;
      }
      return true;
    },
  };
}
