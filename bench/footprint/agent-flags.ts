// The node flags the agent runs with, read from the systemd unit: the bench measures what is installed, and the unit
// stays the one place they are written (the container image's entry point reads the same variable).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../fleet/ferry-server.js";

const UNIT_FILE = join(ROOT, "installers/linux/ferry-agent.service");

export function agentNodeFlags(unitText = readFileSync(UNIT_FILE, "utf8")): string[] {
  const m = /^Environment="FERRY_AGENT_NODE_FLAGS=([^"]*)"$/m.exec(unitText);
  if (!m) throw new Error(`${UNIT_FILE} sets no FERRY_AGENT_NODE_FLAGS`);
  return (m[1] as string).split(/\s+/).filter(Boolean);
}
