// Records refused agent calls: always a log line and a metric; an audit record too, but at most `perMinute` per
// code, because refusals are driven by whoever connects and must not let a stranger flood the audit log.
import type { Logger } from "pino";
import type { Counter } from "prom-client";
import type { FleetService } from "../../domain/fleet/fleet-service.js";

export class RefusalRecorder {
  private window = 0;
  private readonly counts = new Map<string, number>();

  constructor(
    private readonly fleet: FleetService,
    private readonly log: Logger,
    private readonly metric: Counter<"code" | "listener">,
    private readonly perMinute = 30,
  ) {}

  /** `action` names the audit record (default `<listener>.call`). */
  refuse(listener: "agent" | "enrolment", code: string, message: string, details: Record<string, unknown>, action = `${listener}.call`): void {
    this.metric.inc({ code, listener });
    this.log.warn({ code, listener, ...details }, `refused: ${message}`);
    const minute = Math.floor(Date.now() / 60_000);
    if (minute !== this.window) {
      this.window = minute;
      this.counts.clear();
    }
    const n = (this.counts.get(code) ?? 0) + 1;
    this.counts.set(code, n);
    if (n > this.perMinute) return;
    this.fleet
      .refuse(action, typeof details["agentId"] === "string" ? details["agentId"] : "-", code, { ...details, message })
      .catch((err: unknown) => this.log.warn({ err }, "could not write the audit record for a refusal"));
  }
}
