// Delivers queued tasks to the agents whose Connect streams this replica holds.
//
// Woken three ways: a NOTIFY on the task channel (a task queued through any replica), an agent's Hello (it just
// connected here), and a periodic sweep (the safety net for a missed notice, and for tasks whose offer lease ran out
// and went back to the queue). Offers for one agent are never claimed twice at once on this replica; across replicas
// the claim's FOR UPDATE SKIP LOCKED keeps a task with one claimer.
import { create } from "@bufbuild/protobuf";
import { credentialRegistry } from "@ferry/contract";
import { ConnectResponseSchema, RegistryCredentialSchema, SignedTaskSchema, TaskOfferSchema, type RegistryCredential, type TaskOffer } from "@ferry/proto";
import type { Logger } from "pino";
import type { ClaimedTask, TaskQueue } from "../../domain/deploy/task-queue.js";
import type { TaskImage } from "../../ports/signer.js";
import type { CredentialStore } from "../../ports/registry.js";
import type { Queryable } from "../../ports/store.js";
import type { SessionRegistry } from "./session-registry.js";

export interface TaskDispatcherDeps {
  queue: TaskQueue;
  sessions: SessionRegistry;
  /** Registry credentials for a task's images (never persisted with the task; resolved at each offer). */
  credentialsFor: (images: TaskImage[]) => Promise<RegistryCredential[]>;
  log: Logger;
  /** When a control plane just started, running leases are not expired for this long (agents are reconnecting). */
  expireRunningAfter: () => number;
  now: () => number;
  sweepIntervalMs?: number;
  onOffer?: (taskId: string) => void;
}

export class TaskDispatcher {
  readonly #inFlight = new Map<string, boolean>(); // agentId → another round requested while one runs
  #timer: NodeJS.Timeout | null = null;
  #sweeping = false;

  constructor(private readonly d: TaskDispatcherDeps) {}

  start(): void {
    this.#timer = setInterval(() => void this.sweep(), this.d.sweepIntervalMs ?? 2_000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Offers for claimed tasks; registry credentials are looked up once for all of them. */
  async toOffers(tasks: ClaimedTask[]): Promise<TaskOffer[]> {
    if (tasks.length === 0) return [];
    const credentials = await this.d.credentialsFor(tasks.flatMap((t) => t.images));
    return tasks.map((t) => {
      const registries = new Set(t.images.map((i) => credentialRegistry(i.repository)));
      return create(TaskOfferSchema, {
        task: create(SignedTaskSchema, { payload: t.payload, payloadType: t.payloadType, keyId: t.keyId, signature: t.signature }),
        credentials: credentials.filter((c) => registries.has(c.registry)),
        attempt: t.attempt,
      });
    });
  }

  /** Offers the agent's queued tasks on its stream, if this replica holds it. */
  wake(agentId: string): void {
    if (!this.d.sessions.get(agentId)) return;
    if (this.#inFlight.has(agentId)) {
      this.#inFlight.set(agentId, true);
      return;
    }
    this.#inFlight.set(agentId, false);
    void this.#deliver(agentId);
  }

  async #deliver(agentId: string): Promise<void> {
    try {
      for (;;) {
        const session = this.d.sessions.get(agentId);
        if (!session || session.closed) break;
        const claimed = await this.d.queue.claim(agentId);
        const offers = await this.toOffers(claimed);
        for (const [i, t] of claimed.entries()) {
          const offer = offers[i]!;
          const live = this.d.sessions.get(agentId);
          // If the stream went away, the offer lease runs out and the task is queued again.
          if (!live || live.closed) break;
          this.d.sessions.send(live, create(ConnectResponseSchema, { body: { case: "taskOffer", value: offer } }));
          this.d.onOffer?.(t.id);
          this.d.log.info({ agentId, taskId: t.id, attempt: t.attempt }, "task offered");
        }
        if (this.#inFlight.get(agentId) !== true && claimed.length < 16) break;
        this.#inFlight.set(agentId, false);
      }
    } catch (err) {
      this.d.log.warn({ err, agentId }, "could not deliver tasks; the sweep will retry");
    } finally {
      this.#inFlight.delete(agentId);
    }
  }

  /** Lease housekeeping plus a delivery round for local agents with queued tasks. */
  async sweep(): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      const { requeued, expired } = await this.d.queue.sweep({ expireRunning: this.d.now() >= this.d.expireRunningAfter() });
      if (expired > 0) this.d.log.info({ expired }, "tasks expired");
      const waiting = new Set([...requeued, ...(await this.d.queue.agentsWithQueued())].filter((a) => this.d.sessions.get(a)));
      for (const a of waiting) this.wake(a);
    } catch (err) {
      this.d.log.warn({ err }, "task sweep failed");
    } finally {
      this.#sweeping = false;
    }
  }
}

/** Credentials for the registries of a task's images, from the components' credential references. */
export async function registryCredentialsFor(store: Queryable, credentials: CredentialStore, images: TaskImage[]): Promise<RegistryCredential[]> {
  const r = await store.query<{ name: string; credentials_ref: string | null }>(
    "SELECT name, credentials_ref FROM components WHERE name = ANY($1) AND credentials_ref IS NOT NULL",
    [images.map((i) => i.component)],
  );
  const out = new Map<string, RegistryCredential>();
  for (const row of r.rows) {
    const image = images.find((i) => i.component === row.name);
    if (!image || !row.credentials_ref) continue;
    const c = await credentials.get(row.credentials_ref);
    if (!c) continue; // the agent's own credentials may still serve; a pull failure says so plainly
    const registry = credentialRegistry(image.repository);
    out.set(registry, create(RegistryCredentialSchema, { registry, username: c.username, password: c.password }));
  }
  return [...out.values()];
}
