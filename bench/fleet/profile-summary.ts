// Summarises a V8 CPU profile of the Ferry server (`npm run bench:fleet -- --cpu-prof`) over one bench phase:
// self time and inclusive time by function, busy time only (idle excluded).
//
//   node --import tsx bench/fleet/profile-summary.ts <file.cpuprofile> <bench-results/fleet-….json> <target> <phase> [top]
//   e.g. … ferry storm 40        (phases: connect, steady, fanout-1..3, storm; target "setup": enrol)
//
// Profiles and the bench's phase marks share the monotonic clock (microseconds), so a phase is cut out exactly.
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}
interface Mark {
  target: string;
  phase: string;
  startMonoUs: number;
  endMonoUs: number;
}

const [file, resultsFile, target, phaseName, topArg] = process.argv.slice(2);
if (!file || !resultsFile || !target || !phaseName) {
  process.stderr.write("usage: profile-summary.ts <file.cpuprofile> <results.json> <target> <phase> [top]\n");
  process.exit(2);
}
const top = Number(topArg ?? 30);
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const marks = (JSON.parse(readFileSync(resultsFile, "utf8")) as { phases?: Mark[] }).phases ?? [];
const mark = marks.find((m) => m.target === target && m.phase === phaseName);
if (!mark) {
  process.stderr.write(`no phase ${target}/${phaseName} in ${resultsFile}; phases: ${marks.map((m) => `${m.target}/${m.phase}`).join(", ")}\n`);
  process.exit(2);
}

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const label = (n: ProfileNode) =>
  `${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url.replace(/^.*node_modules\//, "").replace(/^file:\/\/\/.*?\/(control-plane|pki|proto)\//, "$1/")}:${n.callFrame.lineNumber + 1}`;

const self = new Map<string, number>();
const inclusive = new Map<string, number>();
let total = 0;
let idle = 0;
let t = profile.startTime;
for (let i = 0; i < profile.samples.length; i++) {
  t += profile.timeDeltas[i] ?? 0;
  if (t < mark.startMonoUs || t > mark.endMonoUs) continue;
  const dt = profile.timeDeltas[i + 1] ?? 0;
  const node = byId.get(profile.samples[i] as number);
  if (!node) continue;
  total += dt;
  if (node.callFrame.functionName === "(idle)") {
    idle += dt;
    continue;
  }
  self.set(label(node), (self.get(label(node)) ?? 0) + dt);
  const seen = new Set<string>();
  for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
    const l = label(byId.get(id) as ProfileNode);
    if (seen.has(l)) continue;
    seen.add(l);
    inclusive.set(l, (inclusive.get(l) ?? 0) + dt);
  }
}
const busy = total - idle;
const list = (m: Map<string, number>, n: number) =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${(v / 1000).toFixed(0).padStart(8)} ms ${((100 * v) / busy).toFixed(1).padStart(5)} %  ${k}`)
    .join("\n");
process.stdout.write(
  `${target}/${phaseName}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (${((100 * busy) / Math.max(1, total)).toFixed(0)} %)\n` +
    `--- self time\n${list(self, top)}\n--- inclusive time\n${list(inclusive, top * 2)}\n`,
);
