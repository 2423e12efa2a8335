// The Router on HAProxy through its runtime API: servers, weights and drain states change in the running process,
// with no reload, so no connection is dropped. Maintenance messages live in a map file the config's frontend reads
// (haproxy-config.ts), and so does an A/B split: its slot and percent under the service's name, each allowlisted value
// under "<service>=<value>", in the split map the generated config reads. The epoch is HAProxy's pid and start time: a restart (or reload, which starts a new process
// with fresh counters) changes it.
import { setTimeout as sleep } from "node:timers/promises";

import { MAX_SPLIT_ALLOWLIST, SPLIT_VALUE_RE } from "@ferry/contract";

import { RouterError, SLOTS, type DrainResult, type Router, type RouterCounters, type RouterInfo, type Slot, type SlotCounters, type SlotState, type Split, type Weights } from "../router.js";
import { backendOf, SERVICE_NAME, splitAllowKey } from "./haproxy-config.js";
import { cliArg, parseInfo, parseMapEntries, parseStatCsv, RuntimeApi } from "./runtime-api.js";

export interface HaproxyRouterOptions {
  socket: string;
  maintenanceMap: string;
  /** The map file of A/B splits the config's split rules read; needed only for routes with a split. */
  splitMap?: string;
  timeoutMs?: number;
  /** How often a drain looks at the slot's connections. */
  drainPollMs?: number;
}

// Printable ASCII without '"' and '\': HAProxy quotes the value when it reports it back, and no escaping games.
const MESSAGE_RE = /^[\x20\x21\x23-\x5b\x5d-\x7e]{1,256}$/;

export class HaproxyRouter implements Router {
  readonly kind = "haproxy";
  readonly #api: RuntimeApi;
  readonly #o: HaproxyRouterOptions;

  constructor(o: HaproxyRouterOptions) {
    this.#o = o;
    this.#api = new RuntimeApi(o.socket, o.timeoutMs);
  }

  async info(): Promise<RouterInfo> {
    const i = parseInfo(await this.#api.command("show info"));
    if (!i["Version"]) throw new RouterError("ROUTER_UNAVAILABLE", `haproxy at ${this.#o.socket} did not answer show info`);
    return { kind: this.kind, version: i["Version"], epoch: epochOf(i) };
  }

  async setServer(service: string, slot: Slot, address: string, port: number): Promise<SlotState> {
    if (!/^[0-9a-fA-F.:]{2,45}$/.test(address) || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new RouterError("ROUTER_COMMAND_FAILED", `haproxy: ${address}:${port} is not an IP address and port`);
    }
    await this.#ok(`set server ${this.#server(service, slot)} addr ${address} port ${port}`, /changed|no need to change/i);
    return (await this.slots(service))[slot];
  }

  async setWeights(service: string, weights: Weights): Promise<Weights> {
    for (const s of SLOTS) {
      const w = weights[s];
      if (!Number.isInteger(w) || w < 0 || w > 100) throw new RouterError("ROUTER_COMMAND_FAILED", `weight of ${s} must be 0–100, not ${w}`);
    }
    if (weights.blue === 0 && weights.green === 0) throw new RouterError("ROUTER_COMMAND_FAILED", "both slots at weight 0 would refuse every request; use maintenance mode for that");
    // The slot gaining traffic first, so at no moment both are at 0 and a request finds no server.
    const order = [...SLOTS].sort((a, b) => weights[b] - weights[a]);
    for (const s of order) {
      if (weights[s] > 0) await this.#ok(`set server ${this.#server(service, s)} state ready`);
      await this.#ok(`set weight ${this.#server(service, s)} ${weights[s]}`);
    }
    return this.weights(service);
  }

  async weights(service: string): Promise<Weights> {
    const out = { blue: 0, green: 0 };
    for (const s of SLOTS) {
      const answer = await this.#api.command(`get weight ${this.#server(service, s)}`);
      const m = /^(\d+) \(initial \d+\)/.exec(answer.trim());
      if (!m) throw this.#failed(`get weight ${this.#server(service, s)}`, answer);
      out[s] = Number(m[1]);
    }
    return out;
  }

  async slots(service: string): Promise<Record<Slot, SlotState>> {
    const rows = await this.#rows(service);
    const weights = await this.weights(service);
    const state = (row: Record<string, string>): SlotState["state"] => (row["status"] === "MAINT" ? "maint" : row["status"] === "DRAIN" ? "drain" : "ready");
    const one = (s: Slot): SlotState => {
      const row = rows[s];
      const addr = row["addr"] ?? "";
      const i = addr.lastIndexOf(":");
      return { address: addr.slice(0, i), port: Number(addr.slice(i + 1)), weight: weights[s], state: state(row) };
    };
    return { blue: one("blue"), green: one("green") };
  }

  async drain(service: string, slot: Slot, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<DrainResult> {
    const started = Date.now();
    await this.#ok(`set server ${this.#server(service, slot)} state drain`);
    let remaining: number;
    for (;;) {
      remaining = Number((await this.#rows(service))[slot]["scur"] ?? 0);
      if (remaining === 0 || Date.now() - started >= opts.timeoutMs || opts.signal?.aborted) break;
      await sleep(this.#o.drainPollMs ?? 100);
    }
    await this.#ok(`set weight ${this.#server(service, slot)} 0`);
    await this.#ok(`set server ${this.#server(service, slot)} state maint`);
    return { drained: remaining === 0, remaining, waitedMs: Date.now() - started };
  }

  async ready(service: string, slot: Slot): Promise<void> {
    await this.#ok(`set server ${this.#server(service, slot)} state ready`);
  }

  async counters(service: string): Promise<RouterCounters> {
    const [info, rows] = await Promise.all([this.info(), this.#rows(service)]);
    const slot = (row: Record<string, string>): SlotCounters => {
      const n = (k: string): number => Number(row[k] || 0);
      // A request the slot could not take is a failure of the slot, whether the client saw it (econ: HAProxy answered
      // 503) or not (wredis: HAProxy retried it on the other slot, so the client got the stable version's answer).
      // Count both in requests and in errors, or a canary that does not even listen would look like one that gets
      // no traffic.
      const refused = n("econ") + n("wredis");
      return {
        requests: n("hrsp_1xx") + n("hrsp_2xx") + n("hrsp_3xx") + n("hrsp_4xx") + n("hrsp_5xx") + n("hrsp_other") + refused,
        errors5xx: n("hrsp_5xx") + refused,
        avgResponseMs: n("rtime"),
        connections: n("scur"),
      };
    };
    return { epoch: info.epoch, at: Date.now(), slots: { blue: slot(rows.blue), green: slot(rows.green) } };
  }

  async setMaintenance(service: string, message: string | null): Promise<void> {
    this.#check(service);
    const map = this.#o.maintenanceMap;
    await this.#api.command(`del map ${map} ${service}`);
    if (message === null) return;
    if (!MESSAGE_RE.test(message)) throw new RouterError("ROUTER_COMMAND_FAILED", "a maintenance message is 1–256 printable ASCII characters, without \" and \\");
    await this.#ok(`add map ${map} ${service} ${cliArg(message)}`);
  }

  async maintenance(service: string): Promise<string | null> {
    this.#check(service);
    const answer = await this.#api.command(`get map ${this.#o.maintenanceMap} ${service}`);
    const m = /value="([^"]*)"/.exec(answer);
    return /found=yes/.test(answer) && m ? (m[1] ?? "") : null;
  }

  async setSplit(service: string, split: Split | null): Promise<Split | null> {
    this.#check(service);
    const map = this.#splitMap();
    if (split === null) {
      const entries = await this.#splitEntries(service);
      // The service's entry first: from then on no request is split, whatever allowlist entries are left.
      await this.#ok(`del map ${map} ${service}`, /not found/i);
      for (const e of entries) if (e.key !== service) await this.#ok(`del map ${map} ${cliArg(e.key)}`, /not found/i);
      return this.split(service);
    }
    if (!SLOTS.includes(split.slot)) throw new RouterError("ROUTER_COMMAND_FAILED", `a split's slot must be blue or green, not ${String(split.slot)}`);
    if (!Number.isInteger(split.percent) || split.percent < 0 || split.percent > 100) throw new RouterError("ROUTER_COMMAND_FAILED", `a split's percent must be 0–100, not ${split.percent}`);
    const allow = new Set(split.allowlist);
    if (split.allowlist.length > MAX_SPLIT_ALLOWLIST || [...allow].some((v) => !SPLIT_VALUE_RE.test(v))) {
      throw new RouterError("ROUTER_COMMAND_FAILED", `a split's allowlist is at most ${MAX_SPLIT_ALLOWLIST} values of 1–256 printable ASCII characters without spaces`);
    }
    // The slot must be in service: HAProxy skips a use-server rule naming a server in maintenance (a drained slot).
    await this.ready(service, split.slot);
    const entries = await this.#splitEntries(service);
    const have = new Set(entries.filter((e) => e.key !== service).map((e) => e.key));
    const want = new Set([...allow].map((v) => splitAllowKey(service, v)));
    // The allowlist before the service's entry, so a split never starts without its testers.
    for (const key of want) if (!have.has(key)) await this.#ok(`add map ${map} ${cliArg(key)} 1`);
    for (const key of have) if (!want.has(key)) await this.#ok(`del map ${map} ${cliArg(key)}`, /not found/i);
    const value = `${split.slot}:${split.percent}`;
    // One entry, changed in place: slot and percent switch together.
    if (entries.some((e) => e.key === service)) await this.#ok(`set map ${map} ${service} ${value}`);
    else await this.#ok(`add map ${map} ${service} ${value}`);
    return this.split(service);
  }

  async split(service: string): Promise<Split | null> {
    const entries = await this.#splitEntries(service);
    const head = entries.find((e) => e.key === service);
    if (!head) return null;
    const m = /^(blue|green):(\d{1,3})$/.exec(head.value);
    if (!m) throw new RouterError("ROUTER_COMMAND_FAILED", `haproxy: the split map holds ${JSON.stringify(head.value.slice(0, 100))} for ${service}, not <slot>:<percent>`);
    const prefix = splitAllowKey(service, "");
    const allowlist = [...new Set(entries.filter((e) => e.key.startsWith(prefix)).map((e) => e.key.slice(prefix.length)))].sort();
    return { slot: m[1] as Slot, percent: Number(m[2]), allowlist };
  }

  /** The split map's entries of one service: its own entry and its allowlist entries. */
  async #splitEntries(service: string): Promise<{ key: string; value: string }[]> {
    this.#check(service);
    const answer = await this.#api.command(`show map ${this.#splitMap()}`);
    if (/Unknown map identifier/i.test(answer)) throw new RouterError("ROUTE_UNKNOWN", `haproxy has no split map ${this.#splitMap()} (its config has no split rules; see docs/rollouts.md#ab-split)`);
    const prefix = splitAllowKey(service, "");
    return parseMapEntries(answer).filter((e) => e.key === service || e.key.startsWith(prefix));
  }

  #splitMap(): string {
    if (!this.#o.splitMap) throw new RouterError("ROUTER_COMMAND_FAILED", "no split map is configured for the router (drivers.docker.routerSplitMap; docs/rollouts.md#ab-split)");
    return this.#o.splitMap;
  }

  #check(service: string): void {
    if (!SERVICE_NAME.test(service)) throw new RouterError("ROUTE_UNKNOWN", `service name ${JSON.stringify(service)} must match ${SERVICE_NAME.source}`);
  }

  #server(service: string, slot: Slot): string {
    this.#check(service);
    return `${backendOf(service)}/${slot}`;
  }

  async #rows(service: string): Promise<Record<Slot, Record<string, string>>> {
    this.#check(service);
    const answer = await this.#api.command(`show stat ${backendOf(service)} 4 -1`);
    if (/^No such proxy/i.test(answer.trim())) throw new RouterError("ROUTE_UNKNOWN", `haproxy has no backend ${backendOf(service)} (see docs/rollouts.md#setting-up-haproxy)`);
    const rows = parseStatCsv(answer);
    const blue = rows.find((r) => r["svname"] === "blue");
    const green = rows.find((r) => r["svname"] === "green");
    if (!blue || !green) throw new RouterError("ROUTE_UNKNOWN", `haproxy has no backend ${backendOf(service)} with servers blue and green (see docs/rollouts.md#setting-up-haproxy)`);
    return { blue, green };
  }

  /** Runs a command whose success HAProxy answers with an empty line (or a line matching `okRe`). */
  async #ok(cmd: string, okRe?: RegExp): Promise<void> {
    const answer = (await this.#api.command(cmd)).trim();
    if (answer === "" || okRe?.test(answer)) return;
    if (/No such (backend|server)|Unknown backend|No such server/i.test(answer)) throw new RouterError("ROUTE_UNKNOWN", `haproxy: ${cmd}: ${answer}`);
    throw this.#failed(cmd, answer);
  }

  #failed(cmd: string, answer: string): RouterError {
    return new RouterError("ROUTER_COMMAND_FAILED", `haproxy: ${cmd}: ${answer.trim().slice(0, 300) || "no answer"}`);
  }
}

function epochOf(i: Record<string, string>): string {
  const start = i["Start_time_sec"] ?? String(Math.round(Date.now() / 1000) - Number(i["Uptime_sec"] ?? 0));
  return `${i["Pid"] ?? "?"}@${start}`;
}
