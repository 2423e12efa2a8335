import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { TargetStatusView } from "../../domain/deploy/deployment-service.js";
import type { AgentView } from "../../domain/fleet/fleet-service.js";
import { buildMatrix, staleAfterMs } from "./estate-matrix.js";

const NOW = new Date("2026-12-04T12:00:00Z");
const D1 = `sha256:${"1".repeat(64)}`;
const D2 = `sha256:${"2".repeat(64)}`;

function agent(id: string, status: AgentView["status"], extra: Partial<AgentView> = {}): AgentView {
  return {
    id,
    name: `host-${id}`,
    environment: "staging",
    labels: {},
    facts: {},
    status,
    connected: status === "online",
    lastHeartbeatAt: NOW.toISOString(),
    clockSkewMs: 0,
    heartbeatIntervalMs: 15_000,
    certificate: { serial: "ab", notAfter: null },
    enrolledAt: NOW.toISOString(),
    statusChangedAt: "2026-12-04T11:59:00.000Z",
    revokedAt: null,
    revokeReason: null,
    ...extra,
  };
}

function target(name: string, agentId: string | null, over: Partial<TargetStatusView> = {}): TargetStatusView {
  return {
    environment: "staging",
    target: name,
    targetId: `tgt_${name}`,
    kind: "docker",
    agentId,
    deployed: { deploymentId: "dep_1", taskId: "tsk_1", releaseId: "rel_1", release: "shop@1", images: [{ component: "web", repository: "r/web", digest: D1, ref: `r/web@${D1}` }], finishedAt: NOW.toISOString() },
    sticker: { deploymentId: "dep_1", images: [{ component: "web", digest: D1 }] },
    stickerReportedAt: new Date(NOW.getTime() - 5_000).toISOString(),
    sync: "in-sync",
    drift: [],
    activeTask: null,
    ...over,
  };
}

describe("the console's estate matrix", () => {
  it("never shows a target in sync while its agent is offline or revoked", () => {
    const m = buildMatrix(["staging"], ["web"], [target("a", "off"), target("b", "rev"), target("c", "on")], [agent("off", "offline"), agent("rev", "revoked"), agent("on", "online")], NOW);
    const byName = new Map(m.cells[0]!.targets.map((t) => [t.target, t]));
    assert.equal(byName.get("a")!.state, "offline");
    assert.match(byName.get("a")!.reasons[0]!, /agent host-off is offline since 2026-12-04T11:59:00.000Z; what is shown is its last report/);
    assert.equal(byName.get("b")!.state, "revoked");
    assert.equal(byName.get("c")!.state, "in-sync");
    // The cell shows its worst target.
    assert.equal(m.cells[0]!.state, "revoked");
    assert.deepEqual(m.cells[0]!.releases, ["shop@1"]);
  });

  it("marks a sticker older than the stale limit as stale, with its age", () => {
    const old = new Date(NOW.getTime() - staleAfterMs(15_000) - 1000).toISOString();
    const m = buildMatrix(["staging"], ["web"], [target("a", "on", { stickerReportedAt: old })], [agent("on", "online")], NOW);
    const t = m.cells[0]!.targets[0]!;
    assert.equal(t.state, "stale");
    assert.match(t.reasons[0]!, /no report from the agent for 901 s \(stale after 900 s\)/);
    assert.equal(m.staleAfterSeconds, 900);
  });

  it("keeps drift reasons and shows a running task as deploying", () => {
    const m = buildMatrix(
      ["staging"],
      ["web"],
      [
        target("a", "on", { sync: "drift", drift: [`web: sticker says ${D2}, Ferry deployed ${D1}`] }),
        target("b", "on", { activeTask: { id: "tsk_9", deploymentId: "dep_9", state: "running" } }),
      ],
      [agent("on", "online")],
      NOW,
    );
    const [a, b] = m.cells[0]!.targets;
    assert.equal(a!.state, "drift");
    assert.deepEqual(a!.reasons, [`web: sticker says ${D2}, Ferry deployed ${D1}`]);
    assert.equal(b!.state, "deploying");
    assert.equal(m.cells[0]!.state, "drift");
  });

  it("lists targets with no deployment and no sticker apart, and targets without an agent as such", () => {
    const m = buildMatrix(
      ["staging"],
      ["web"],
      [target("new", "on", { deployed: null, sticker: null, stickerReportedAt: null, sync: "never-deployed" }), target("orphan", null)],
      [agent("on", "online")],
      NOW,
    );
    assert.deepEqual(m.undeployed.map((t) => [t.target, t.state, t.environment]), [["new", "never-deployed", "staging"]]);
    assert.equal(m.cells[0]!.targets[0]!.state, "no-agent");
  });

  it("places a target under each component it runs and adds components only stickers know", () => {
    const images = [
      { component: "web", repository: "r/web", digest: D1, ref: "" },
      { component: "sidecar", repository: "r/sidecar", digest: D2, ref: "" },
    ];
    const m = buildMatrix(["staging"], ["web"], [target("a", "on", { deployed: { deploymentId: "d", taskId: "t", releaseId: "rel_1", release: "shop@1", images, finishedAt: NOW.toISOString() } })], [agent("on", "online")], NOW);
    assert.deepEqual(m.components, ["sidecar", "web"]);
    assert.deepEqual(m.cells.map((c) => [c.component, c.targets[0]!.digest]), [["web", D1], ["sidecar", D2]]);
  });
});
