// Reads a process's resource use from /proc (Linux only): resident memory, CPU time, open files.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

function clockTicksPerSecond(): number {
  try {
    const n = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
}

const CLK_TCK = clockTicksPerSecond();

/** VmRSS of the process, bytes. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) * 1024;
}

/** User + system CPU time the process has used, milliseconds (resolution 1/CLK_TCK s). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may contain spaces and parentheses: count fields after its closing parenthesis.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`cannot parse /proc/${pid}/stat`);
  return ((utime + stime) * 1000) / CLK_TCK;
}

export function openFiles(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** CPU time every process on the machine has used (user, nice, system, irq, softirq), milliseconds, from /proc/stat. */
export function machineCpuMs(): { busy: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  // cpu user nice system idle iowait irq softirq steal guest guest_nice: guest time is already inside user/nice,
  // and idle, iowait and steal (a hypervisor running someone else) are not work done here.
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = [0, 1, 2, 5, 6].reduce((s, i) => s + (v[i] ?? 0), 0);
  return { busy: (busy * 1000) / CLK_TCK };
}

/**
 * Machine-wide TCP counters (/proc/net/netstat): SYNs dropped because a listen queue was full, and SYN
 * retransmissions by clients. A reconnect storm that overflows the server's accept queue shows here.
 */
export function tcpCounters(): { listenOverflows: number; listenDrops: number; synRetrans: number } {
  const lines = readFileSync("/proc/net/netstat", "utf8").split("\n");
  const out = { listenOverflows: NaN, listenDrops: NaN, synRetrans: NaN };
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const names = (lines[i] ?? "").trim().split(/\s+/);
    const values = (lines[i + 1] ?? "").trim().split(/\s+/);
    if (names[0] !== "TcpExt:") continue;
    const get = (k: string) => Number(values[names.indexOf(k)]);
    out.listenOverflows = get("ListenOverflows");
    out.listenDrops = get("ListenDrops");
    out.synRetrans = get("TCPSynRetrans");
  }
  return out;
}
