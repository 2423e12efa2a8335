// Reading a process's memory from outside: resident set from /proc (the figure the targets are stated in, split into
// anonymous and file-backed pages), and the V8 heap from inside, through a preload every measured process gets.
//
// The preload (`node --import`) answers SIGUSR2 by writing process.memoryUsage() to the file named by
// FERRY_BENCH_MEMORY_FILE. Every measured process — Ferry servers, the agent, the bare node — carries the same
// preload, so none is favoured; it adds one signal handler and nothing else. Ferry handles no SIGUSR2 itself.
import { existsSync, readFileSync, statSync } from "node:fs";

const REPORTER_SOURCE = `
import { renameSync, writeFileSync } from "node:fs";
const file = process.env.FERRY_BENCH_MEMORY_FILE;
if (file) {
  process.on("SIGUSR2", () => {
    const m = process.memoryUsage();
    writeFileSync(file + ".tmp", JSON.stringify({ at: Date.now(), heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers }));
    renameSync(file + ".tmp", file);
  });
}
`;
export const MEMORY_REPORTER = `data:text/javascript,${encodeURIComponent(REPORTER_SOURCE)}`;

export interface MemorySample {
  /** Seconds since the process started (as the bench saw it). */
  atSeconds: number;
  rssBytes: number;
  anonBytes: number;
  fileBytes: number;
  heapUsedBytes: number | null;
  heapTotalBytes: number | null;
  externalBytes: number | null;
  /**
   * Resident bytes of WebAssembly memory, where PGlite's PostgreSQL lives (it never shrinks). V8 reserves each
   * WebAssembly.Memory as one range of 8 GiB (bounds checks by guard pages) and makes its current size readable and
   * writable: in /proc/PID/smaps, a rw-p mapping followed at once by the reservation's ---p rest, the two ≥ 4 GiB.
   */
  wasmBytes: number;
}

const WASM_RESERVATION_BYTES = 4 * 1024 ** 3;

/** Resident bytes of the process's WebAssembly memories (see MemorySample.wasmBytes), from /proc/PID/smaps. */
export function wasmResidentBytes(pid: number): number {
  interface Vma { start: bigint; end: bigint; perms: string; rss: number }
  const vmas: Vma[] = [];
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) /.exec(line);
    if (head) {
      vmas.push({ start: BigInt(`0x${head[1]}`), end: BigInt(`0x${head[2]}`), perms: head[3]!, rss: 0 });
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && vmas.length) vmas[vmas.length - 1]!.rss = Number(rss[1]) * 1024;
  }
  let total = 0;
  for (let i = 0; i + 1 < vmas.length; i++) {
    const [rw, guard] = [vmas[i]!, vmas[i + 1]!];
    if (rw.perms === "rw-p" && guard.perms === "---p" && rw.end === guard.start && guard.end - rw.start >= WASM_RESERVATION_BYTES) total += rw.rss;
  }
  return total;
}

function statusKb(pid: number, key: string): number {
  const m = new RegExp(`${key}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no ${key} for process ${pid}`);
  return Number(m[1]) * 1024;
}

/** RSS now, and the heap as the process reports it (null when it did not answer within a second). */
export async function sample(pid: number, reportFile: string, startedAt: number): Promise<MemorySample> {
  const before = existsSync(reportFile) ? statSync(reportFile).mtimeMs : 0;
  const rssBytes = statusKb(pid, "VmRSS");
  const anonBytes = statusKb(pid, "RssAnon");
  const fileBytes = statusKb(pid, "RssFile");
  const wasmBytes = wasmResidentBytes(pid);
  process.kill(pid, "SIGUSR2");
  type Reported = { heapUsed: number; heapTotal: number; external: number };
  let heap: Reported | null = null as Reported | null;
  for (const deadline = Date.now() + 1000; Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 20));
    if (existsSync(reportFile) && statSync(reportFile).mtimeMs !== before) {
      try {
        heap = JSON.parse(readFileSync(reportFile, "utf8")) as Reported;
        break;
      } catch {
        // being replaced
      }
    }
  }
  return {
    atSeconds: Math.round((Date.now() - startedAt) / 100) / 10,
    rssBytes,
    anonBytes,
    fileBytes,
    heapUsedBytes: heap?.heapUsed ?? null,
    heapTotalBytes: heap?.heapTotal ?? null,
    externalBytes: heap?.external ?? null,
    wasmBytes,
  };
}

/**
 * Samples every `everyMs` from `fromMs` to `toMs` after `startedAt` and returns every sample plus the one with the
 * largest RSS: the figure judged, so a garbage collection that happens to run just before one reading cannot flatter
 * the result.
 */
export async function window(pid: number, reportFile: string, startedAt: number, fromMs: number, toMs: number, everyMs = 5000): Promise<{ samples: MemorySample[]; peak: MemorySample }> {
  const samples: MemorySample[] = [];
  for (let t = fromMs; t <= toMs; t += everyMs) {
    const wait = startedAt + t - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    samples.push(await sample(pid, reportFile, startedAt));
  }
  const peak = samples.reduce((a, b) => (b.rssBytes > a.rssBytes ? b : a));
  return { samples, peak };
}

export const mib = (bytes: number | null): string => (bytes === null ? "–" : `${(bytes / 1048576).toFixed(1)} MB`);
