// Back-pressure on one agent stream: how many bytes of received task messages wait to be applied, and pausing the
// stream while that passes a bound.
//
// Task messages of a stream are applied one after another (each is a database transaction), so an agent sending
// log chunks faster than the store takes them would otherwise pile them up in the control plane's memory: 400 chunks
// of 1 MB raised a server to ~296 MB. When the pending bytes pass `highBytes`, the stream is paused (grpc-js stops
// reading it; HTTP/2 flow control then stops the agent's writes); below `lowBytes` it resumes. While paused,
// grpc-js still holds up to its read-ahead (16 messages, each at most --max-message-bytes) — that and `highBytes` plus
// one message bound what one stream can make the server buffer.
export interface StreamIntakeOptions {
  highBytes: number;
  lowBytes: number;
  /** Called whenever the pending byte count changes (metrics, tests). */
  observe?: (pendingBytes: number, paused: boolean) => void;
}

export const DEFAULT_STREAM_INTAKE = { highBytes: 4 * 1024 * 1024, lowBytes: 1024 * 1024 } as const;

export class StreamIntake {
  #pending = 0;
  #paused = false;

  constructor(
    private readonly stream: { pause(): unknown; resume(): unknown },
    private readonly o: StreamIntakeOptions,
  ) {}

  /** A message of `bytes` was received and queued. */
  add(bytes: number): void {
    this.#pending += bytes;
    if (!this.#paused && this.#pending > this.o.highBytes) {
      this.#paused = true;
      this.stream.pause();
    }
    this.o.observe?.(this.#pending, this.#paused);
  }

  /** A queued message of `bytes` was applied (or failed). */
  done(bytes: number): void {
    this.#pending = Math.max(0, this.#pending - bytes);
    if (this.#paused && this.#pending <= this.o.lowBytes) {
      this.#paused = false;
      this.stream.resume();
    }
    this.o.observe?.(this.#pending, this.#paused);
  }

  get pendingBytes(): number {
    return this.#pending;
  }

  get paused(): boolean {
    return this.#paused;
  }
}

/** Roughly what a received task message holds in memory: its variable-length fields plus a fixed overhead. */
export function taskMessageBytes(body: { case: string; value: unknown }): number {
  const v = body.value as Record<string, unknown>;
  let n = 128;
  for (const key of ["data", "detail", "step", "message", "detailsJson", "refusalMessage"]) {
    const f = v[key];
    if (typeof f === "string") n += f.length;
    else if (f instanceof Uint8Array) n += f.byteLength;
  }
  return n;
}
