// The rollout engine: a background service every replica runs. Each tick it claims active rollouts whose lease is
// free or ran out (FOR UPDATE SKIP LOCKED, so replicas never claim the same one), advances each as far as it can go
// now (RolloutStepper), and releases the lease. A replica killed mid-tick leaves a lease that runs out after
// `leaseMs`; the next replica to tick takes the rollout over from its rows.
import type { Clock } from "../ports/clock.js";
import type { Store } from "../ports/store.js";
import type { RolloutStepper } from "../domain/rollout/rollout-stepper.js";

export interface RolloutEngineOptions {
  store: Store;
  stepper: RolloutStepper;
  clock: Clock;
  /** This replica's id, written as the lease owner. */
  replicaId: string;
  intervalMs?: number;
  leaseMs?: number;
  /** Rollouts claimed per tick. */
  batch?: number;
  onError?: (err: unknown, rollout: string | null) => void;
}

export interface RolloutEngineStatus {
  name: "rollout-engine";
  running: boolean;
  ticks: number;
  transitions: number;
  lastTickAt: string | null;
  lastError: string | null;
}

export class RolloutEngine {
  readonly name = "rollout-engine";
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private ticks = 0;
  private transitions = 0;
  private lastTickAt: number | null = null;
  private lastError: string | null = null;

  constructor(private readonly o: RolloutEngineOptions) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tickOnce(), this.o.intervalMs ?? 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.ticking;
  }

  status(): RolloutEngineStatus {
    return {
      name: this.name,
      running: this.timer !== null,
      ticks: this.ticks,
      transitions: this.transitions,
      lastTickAt: this.lastTickAt === null ? null : new Date(this.lastTickAt).toISOString(),
      lastError: this.lastError,
    };
  }

  private async tickOnce(): Promise<void> {
    if (this.ticking) return;
    this.ticking = this.tick()
      .then(() => undefined)
      .catch((err: unknown) => {
        this.lastError = err instanceof Error ? err.message : String(err);
        this.o.onError?.(err, null);
      })
      .finally(() => (this.ticking = null));
    await this.ticking;
  }

  /** One pass: claim, advance, release. Returns the transitions made. */
  async tick(): Promise<number> {
    const now = this.o.clock.now();
    const leaseMs = this.o.leaseMs ?? 30_000;
    const claimed = await this.o.store.query<{ id: string }>(
      `UPDATE rollouts SET lease_owner = $1, lease_expires_at = $3
        WHERE id IN (SELECT id FROM rollouts
                      WHERE state IN ('running', 'halted', 'rolling_back') AND (lease_expires_at IS NULL OR lease_expires_at < $2)
                      ORDER BY updated_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
        RETURNING id`,
      [this.o.replicaId, new Date(now), new Date(now + leaseMs), this.o.batch ?? 16],
    );
    let moved = 0;
    for (const { id } of claimed.rows) {
      try {
        moved += await this.o.stepper.advance(id, this.o.replicaId);
      } catch (err) {
        this.lastError = err instanceof Error ? err.message : String(err);
        this.o.onError?.(err, id);
      } finally {
        await this.o.store.query("UPDATE rollouts SET lease_owner = NULL, lease_expires_at = NULL WHERE id = $1 AND lease_owner = $2", [id, this.o.replicaId]);
      }
    }
    this.ticks++;
    this.transitions += moved;
    this.lastTickAt = this.o.clock.now();
    return moved;
  }
}
