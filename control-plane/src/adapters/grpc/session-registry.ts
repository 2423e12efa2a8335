// Live Connect streams on this replica, one per agent.
//
// One sweep timer serves every session (a timer per stream would be 15,000 timers for a large fleet): it sends an
// in-stream Ping to sessions this replica has not written to for one interval, and closes sessions the agent has
// been silent on for longer than the offline window.
import { create } from "@bufbuild/protobuf";
import type { ServerDuplexStream } from "@grpc/grpc-js";
import {
  ConnectResponseSchema,
  DisconnectSchema,
  PingSchema,
  wireError,
  type ConnectResponse,
  type Incoming,
  type ConnectRequestSchema,
  type WireErrorCode,
} from "@ferry/proto";

export type AgentCall = ServerDuplexStream<Incoming<typeof ConnectRequestSchema>, ConnectResponse>;

export interface LiveSession {
  readonly agentId: string;
  readonly serial: string;
  readonly peer: string;
  readonly call: AgentCall;
  readonly openedAt: number;
  lastSentAt: number;
  lastReceivedAt: number;
  closed: boolean;
}

export class SessionRegistry {
  private readonly sessions = new Map<string, LiveSession>();
  private timer: NodeJS.Timeout | null = null;
  private nonce = 0n;

  constructor(
    private readonly o: {
      heartbeatIntervalMs: () => number;
      silentAfterMs: () => number;
      now: () => number;
    },
  ) {}

  start(): void {
    const period = Math.max(50, Math.min(1000, Math.floor(this.o.heartbeatIntervalMs() / 4)));
    this.timer = setInterval(() => this.sweep(), period);
    this.timer.unref();
  }

  get size(): number {
    return this.sessions.size;
  }

  get(agentId: string): LiveSession | undefined {
    return this.sessions.get(agentId);
  }

  all(): IterableIterator<LiveSession> {
    return this.sessions.values();
  }

  /** Registers a session; an older session of the same agent is closed as superseded. */
  add(s: LiveSession): void {
    const old = this.sessions.get(s.agentId);
    this.sessions.set(s.agentId, s);
    if (old && old !== s) this.close(old, "SUPERSEDED", "a newer stream from the same agent replaced this one", 0);
  }

  /** Removes a session that ended; returns true when it was the agent's current one. */
  remove(s: LiveSession): boolean {
    s.closed = true;
    if (this.sessions.get(s.agentId) === s) {
      this.sessions.delete(s.agentId);
      return true;
    }
    return false;
  }

  send(s: LiveSession, msg: ConnectResponse): void {
    if (s.closed) return;
    s.lastSentAt = this.o.now();
    s.call.write(msg);
  }

  /** Tells the agent why, then ends the stream with the matching status. */
  close(s: LiveSession, code: WireErrorCode, message: string, retryAfterMs: number): void {
    if (s.closed) return;
    this.send(
      s,
      create(ConnectResponseSchema, {
        body: { case: "disconnect", value: create(DisconnectSchema, { code, message, retryAfterMs }) },
      }),
    );
    s.closed = true;
    if (this.sessions.get(s.agentId) === s) this.sessions.delete(s.agentId);
    s.call.emit("error", wireError(code, message, retryAfterMs || undefined));
  }

  closeAgent(agentId: string, code: WireErrorCode, message: string): boolean {
    const s = this.sessions.get(agentId);
    if (!s) return false;
    this.close(s, code, message, 0);
    return true;
  }

  closeSerial(serial: string, code: WireErrorCode, message: string): number {
    let n = 0;
    for (const s of [...this.sessions.values()]) {
      if (s.serial === serial) {
        this.close(s, code, message, 0);
        n++;
      }
    }
    return n;
  }

  /** Sends one Ping to every live session; returns how many were written. */
  pingAll(): { sent: number; nonce: bigint } {
    const nonce = ++this.nonce;
    const msg = create(ConnectResponseSchema, { body: { case: "ping", value: create(PingSchema, { nonce }) } });
    let sent = 0;
    for (const s of this.sessions.values()) {
      this.send(s, msg);
      sent++;
    }
    return { sent, nonce };
  }

  closeAll(code: WireErrorCode, message: string, retryAfterMs: number): void {
    for (const s of [...this.sessions.values()]) this.close(s, code, message, retryAfterMs);
  }

  private sweep(): void {
    const now = this.o.now();
    const interval = this.o.heartbeatIntervalMs();
    const silentAfter = this.o.silentAfterMs();
    let ping: ConnectResponse | null = null;
    for (const s of [...this.sessions.values()]) {
      if (now - s.lastReceivedAt > silentAfter) {
        this.close(s, "PROTOCOL_VIOLATION", `no message from the agent for ${now - s.lastReceivedAt} ms`, 0);
      } else if (now - s.lastSentAt >= interval) {
        ping ??= create(ConnectResponseSchema, { body: { case: "ping", value: create(PingSchema, { nonce: ++this.nonce }) } });
        this.send(s, ping);
      }
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
