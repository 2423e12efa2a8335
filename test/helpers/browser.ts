// Debian's Chromium driven by playwright-core, for the console's browser suite. No browser is downloaded: the
// suite uses /usr/bin/chromium (scripts/test-env.sh installs it; FERRY_CHROMIUM points elsewhere). Screenshots are
// kept under test-artifacts/ (FERRY_TEST_ARTIFACTS overrides), which CI keeps as the run's artefacts.
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { loudSkip } from "./docker.js";
import { ROOT } from "./processes.js";

export const CHROMIUM = process.env["FERRY_CHROMIUM"] ?? "/usr/bin/chromium";
export const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"];

/** Why the browser suite cannot run here, or false. Under CI=true a missing Chromium is an error, not a skip. */
export function chromiumSkipReason(suite: string): string | false {
  if (existsSync(CHROMIUM)) return false;
  const reason = `${CHROMIUM} not found (scripts/test-env.sh installs Debian's chromium)`;
  if (process.env["CI"] === "true") throw new Error(`${reason} (CI=true: the browser suite must run)`);
  loudSkip(suite, reason);
  return reason;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

export function artifactsDir(name: string): string {
  const dir = join(process.env["FERRY_TEST_ARTIFACTS"] ?? join(ROOT, "test-artifacts"), name);
  mkdirSync(dir, { recursive: true });
  return dir;
}
