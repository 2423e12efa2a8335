// Host facts the agent reports at enrolment and in every Hello.
import { readFileSync } from "node:fs";
import * as os from "node:os";

import { create } from "@bufbuild/protobuf";
import { TASK_PAYLOAD_VERSIONS } from "@ferry/contract";
import { DriverFactsSchema, HostFactsSchema, type HostFacts } from "@ferry/proto/wire";

import type { AdvertisedDrivers } from "../drivers/registry.js";

let cachedVersion: string | undefined;

/**
 * The agent's version, from agent/package.json. The relative path is the same from src/core/ (run from source) and
 * dist/core/ (built), so one URL serves both.
 */
export function agentVersion(): string {
  // The single-file bundle (scripts/bundle-agent.mjs) has no package.json beside it; the bundler writes the version in.
  const bundled = process.env.FERRY_AGENT_BUNDLED_VERSION;
  if (bundled) return bundled;
  if (cachedVersion === undefined) {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: unknown };
    cachedVersion = typeof pkg.version === "string" ? pkg.version : "0.0.0";
  }
  return cachedVersion;
}

/** Collects the facts now (memory, hostname and drivers can change while the agent runs). */
export function collectFacts(drivers: AdvertisedDrivers): HostFacts {
  return create(HostFactsSchema, {
    hostname: os.hostname(),
    os: process.platform,
    osRelease: os.release(),
    arch: process.arch,
    agentVersion: agentVersion(),
    drivers: drivers.availableDrivers(),
    driverFacts: drivers.driverFacts().map((d) => create(DriverFactsSchema, { kind: d.kind, capabilities: [...d.capabilities], detail: d.detail })),
    taskPayloadVersions: [...TASK_PAYLOAD_VERSIONS],
    cpus: os.availableParallelism(),
    memoryBytes: BigInt(os.totalmem()),
  });
}
