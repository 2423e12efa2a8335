// How the agent runs, read from the systemd unit: the node flags (FERRY_AGENT_NODE_FLAGS) and the allocator's
// environment (MALLOC_*). The bench measures what is installed, and the unit stays the one place these are written
// (the container image sets the same; test/packaging/agent-node-flags.test.ts keeps them equal).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../fleet/ferry-server.js";

const UNIT_FILE = join(ROOT, "installers/linux/ferry-agent.service");

export function agentNodeFlags(unitText = readFileSync(UNIT_FILE, "utf8")): string[] {
  const m = /^Environment="FERRY_AGENT_NODE_FLAGS=([^"]*)"$/m.exec(unitText);
  if (!m) throw new Error(`${UNIT_FILE} sets no FERRY_AGENT_NODE_FLAGS`);
  return (m[1] as string).split(/\s+/).filter(Boolean);
}

/** The glibc allocator settings the unit gives the agent (`Environment=MALLOC_...=value` lines). */
export function agentAllocatorEnv(unitText = readFileSync(UNIT_FILE, "utf8")): Record<string, string> {
  return Object.fromEntries([...unitText.matchAll(/^Environment=(MALLOC_[A-Z_]+)=(\S+)$/gm)].map((m) => [m[1] as string, m[2] as string]));
}
