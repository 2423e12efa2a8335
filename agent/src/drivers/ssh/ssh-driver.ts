// The ssh target driver (docs/drivers/ssh.md): a gateway agent drives a host over SSH, in one of two modes.
//
// docker  The docker driver's own phases, unchanged, with their engine client injected: an engine client whose
//         connections are channels over this SSH connection to the host's engine socket (remote-engine.ts). So a
//         Docker host over SSH gets exactly the Docker driver's guarantees: pull by digest and verify, replace with
//         restore, health with a settle window, interrupted-deploy recovery. Health checks run on the host's
//         loopback. The sticker is the container's labels plus a sticker file on the host.
// script  The operator's scripts (script-phases.ts).
//
// Each phase opens its own connection and closes it when it ends: phases may run as separate tasks, and the state
// between them is plain JSON. Connections count against drivers.ssh.maxSessionsPerHost.
import { ConfigError, parseTargetConfig, sshKind, type Capability, type DockerTargetConfig, type ImagePin, type SshTargetConfig } from "@ferry/contract";
import { pino, type Logger } from "pino";

import type * as DockerModuleNs from "../docker/docker-driver.js";
import type { DockerDriver } from "../docker/docker-driver.js";
import type { DockerPhaseState } from "../docker/phase-state.js";
import { DriverError, PhaseFailure, type DeployOutcome, type Driver, type HealthReport, type PhaseContext, type PhaseState, type TargetInspection, type TargetRef, type TargetSticker } from "../driver.js";
import { connect, type SshSession, type SshSettings } from "./connection.js";
import { asTargetSticker } from "../host-sticker-file.js";
import { DEFAULT_SCRIPT_TIMEOUT_SECONDS, healthVerdict, noHealthScript, runHostScript, runRollback, scriptEnv } from "../script-target.js";
import { readHostSticker, stickerPath, writeHostSticker, type HostSticker } from "./host-sticker.js";
import { checkSudoRelay, DEFAULT_REMOTE_SOCKET, forwardPort, isLoopbackHost, remoteEngine } from "./remote-engine.js";
import { sshScriptHost } from "./script-phases.js";
import { SessionLimit } from "./session-limit.js";

export const DEFAULT_MAX_SESSIONS_PER_HOST = 4;
const NEVER_ABORTS = new AbortController().signal;

type DockerModule = typeof DockerModuleNs;

interface ScriptState extends PhaseState {
  mode: "script";
  image: ImagePin;
  previous: HostSticker | null;
  hostKey: string;
  deployed?: boolean;
  sticker?: string;
}

type SshState = ScriptState | (DockerPhaseState & { mode?: "docker"; sticker?: string });

export interface SshDriverOptions {
  settings?: SshSettings;
  logger?: Logger;
}

export function sshConfig(raw: Record<string, unknown>): SshTargetConfig {
  try {
    return parseTargetConfig(sshKind, raw);
  } catch (err) {
    if (err instanceof ConfigError) throw new DriverError("INVALID_TARGET_CONFIG", err.message, { field: err.path });
    throw err;
  }
}

export class SshDriver implements Driver<SshTargetConfig, SshState> {
  readonly descriptor = sshKind;
  readonly #settings: SshSettings;
  readonly #logger: Logger;
  readonly #limit: SessionLimit;
  #docker: DockerModule | undefined;

  constructor(opts: SshDriverOptions = {}) {
    this.#settings = opts.settings ?? {};
    this.#logger = (opts.logger ?? pino({ level: "silent" })).child({ driver: "ssh" });
    this.#limit = new SessionLimit(this.#settings.maxSessionsPerHost ?? DEFAULT_MAX_SESSIONS_PER_HOST);
  }

  capabilities(): readonly Capability[] {
    return sshKind.capabilities;
  }

  async available(): Promise<{ ok: boolean; detail: string }> {
    // A gateway driver reaches many hosts; what it needs of its own is a key.
    const s = this.#settings;
    if (!s.keyFile && !s.keyDir) return { ok: false, detail: "no SSH key: set drivers.ssh.keyFile or drivers.ssh.keyDir" };
    return { ok: true, detail: `ssh gateway (key ${s.keyFile ?? `${s.keyDir}/<credentialsRef>`}, at most ${s.maxSessionsPerHost ?? DEFAULT_MAX_SESSIONS_PER_HOST} sessions per host)` };
  }

  /** Runs `fn` on a fresh connection to the target's host, closed afterwards. */
  async #with<T>(config: SshTargetConfig, signal: AbortSignal, fn: (session: SshSession) => Promise<T>, log?: (line: string) => void): Promise<T> {
    const session = await connect(config, this.#settings, this.#limit, signal);
    if (session.firstUse) {
      log?.(`ssh: trust on first use: recorded the host key of ${session.where} (${session.hostKey}) in ${this.#settings.knownHostsFile}`);
      this.#logger.warn({ host: session.where, hostKey: session.hostKey }, "ssh host key recorded on first use");
    }
    try {
      return await fn(session);
    } finally {
      session.close();
    }
  }

  async #dockerDriver(session: SshSession, config: SshTargetConfig, signal: AbortSignal): Promise<DockerDriver> {
    this.#docker ??= await import("../docker/docker-driver.js");
    const socketPath = config.docker?.socketPath ?? DEFAULT_REMOTE_SOCKET;
    if (config.sudo) await checkSudoRelay(session, config, socketPath, signal);
    const engine = remoteEngine(session, socketPath, config.sudo === true);
    const s = this.#settings;
    return new this.#docker.DockerDriver({
      logger: this.#logger,
      engine: () => engine,
      ...(s.stopTimeoutSeconds !== undefined ? { stopTimeoutSeconds: s.stopTimeoutSeconds } : {}),
      ...(s.settleSeconds !== undefined ? { settleSeconds: s.settleSeconds } : {}),
    });
  }

  /** The docker phases' context: the same task, with the target's docker section as its config. */
  #dockerCtx(ctx: PhaseContext<SshTargetConfig>, docker?: DockerTargetConfig): PhaseContext<DockerTargetConfig> {
    return { ...ctx, config: docker ?? ctx.config.docker!, target: { ...ctx.target, config: (docker ?? ctx.config.docker!) as unknown as Record<string, unknown> } };
  }

  // ----- phases ------------------------------------------------------------------------------------------------

  prepare(ctx: PhaseContext<SshTargetConfig>): Promise<SshState> {
    const log = (l: string) => ctx.progress.log(l);
    return this.#with(
      ctx.config,
      ctx.signal,
      async (session) => {
        log(`prepare: connected to ${session.where} (host key ${session.hostKey})`);
        if (ctx.config.mode === "script") {
          const image = pickScriptImage(ctx);
          const previous = (await readHostSticker(session, ctx.config, ctx.target.id, ctx.signal)) ?? null;
          log(previous ? `prepare: the host's sticker says release ${previous.releaseName} ${previous.releaseVersion} (${previous.releaseId}) runs` : "prepare: no sticker on the host: nothing deployed by Ferry before");
          return { mode: "script", image, previous, hostKey: session.hostKey } satisfies ScriptState;
        }
        const docker = await this.#dockerDriver(session, ctx.config, ctx.signal);
        return (await docker.prepare(this.#dockerCtx(ctx)));
      },
      log,
    );
  }

  start(ctx: PhaseContext<SshTargetConfig>, state: SshState): Promise<SshState> {
    return this.#with(ctx.config, ctx.signal, async (session) => {
      if (isScript(state)) {
        // Marked once the script is on the host, before it runs: a script that fails half-way has changed the host,
        // and restore must run rollback; an upload that failed (sudo refused it, say) changed nothing.
        const { failure } = await runHostScript(sshScriptHost(session, ctx), ctx, "deploy", ctx.config.script!.deploy, envFor(ctx, state, "deploy"), scriptTimeout(ctx.config), () => (state.deployed = true));
        if (failure) throw new PhaseFailure(failure, state);
        return state;
      }
      const docker = await this.#dockerDriver(session, ctx.config, ctx.signal);
      // The docker phases write each step into the state they are given; restore works from the same object.
      return (await docker.start(this.#dockerCtx(ctx), state));
    });
  }

  health(ctx: PhaseContext<SshTargetConfig>, state: SshState): Promise<HealthReport> {
    return this.#with(ctx.config, ctx.signal, async (session) => {
      if (isScript(state)) {
        const health = ctx.config.script!.health;
        if (!health) return noHealthScript();
        return healthVerdict(await runHostScript(sshScriptHost(session, ctx), ctx, "health", health, envFor(ctx, state, "health"), scriptTimeout(ctx.config)), "health", "script");
      }
      const dockerConfig = ctx.config.docker!;
      const hc = dockerConfig.healthCheck;
      const docker = await this.#dockerDriver(session, ctx.config, ctx.signal);
      if (hc?.type !== "http" || !hc.url) return docker.health(this.#dockerCtx(ctx), state);
      // An http check is the host's loopback, reached through a forwarded port for the length of the health phase.
      const url = new URL(hc.url);
      if (!isLoopbackHost(url.hostname)) {
        throw new DriverError("INVALID_TARGET_CONFIG", `config.docker.healthCheck.url: over SSH the http check runs on the host's loopback; use http://127.0.0.1:<port>/… (got ${url.hostname})`, {
          field: "config.docker.healthCheck.url",
        });
      }
      const remotePort = Number(url.port || (url.protocol === "https:" ? 443 : 80));
      const forward = await forwardPort(session, remotePort);
      try {
        const local = new URL(hc.url);
        local.hostname = "127.0.0.1";
        local.port = String(forward.port);
        ctx.progress.log(`health: the http check goes to ${hc.url} on ${session.where} (forwarded through the SSH connection)`);
        const report = await docker.health(this.#dockerCtx(ctx, { ...dockerConfig, healthCheck: { ...hc, url: local.toString() } }), state);
        // Report the URL as configured, not the gateway's forwarding port.
        const details: Record<string, unknown> = { ...report.details, url: hc.url };
        const observed = details["observed"] as Record<string, unknown> | undefined;
        if (observed && "url" in observed) details["observed"] = { ...observed, url: hc.url };
        return { ...report, details };
      } finally {
        await forward.close();
      }
    });
  }

  switch(ctx: PhaseContext<SshTargetConfig>, state: SshState): Promise<SshState> {
    return this.#with(ctx.config, ctx.signal, async (session) => {
      let next: SshState = state;
      if (!isScript(state)) next = (await (await this.#dockerDriver(session, ctx.config, ctx.signal)).switch(this.#dockerCtx(ctx), state));
      const file = await writeHostSticker(session, ctx.config, ctx, ctx.signal);
      ctx.progress.log(`switch: wrote the sticker ${file} on ${session.where}`);
      return { ...next, sticker: file };
    });
  }

  retire(ctx: PhaseContext<SshTargetConfig>, state: SshState): Promise<SshState> {
    if (isScript(state)) {
      ctx.progress.log("retire: script mode: the deploy script replaced what ran; nothing to retire");
      return Promise.resolve(state);
    }
    return this.#with(ctx.config, ctx.signal, async (session) => (await (await this.#dockerDriver(session, ctx.config, ctx.signal)).retire(this.#dockerCtx(ctx), state as DockerPhaseState)) as SshState);
  }

  restore(ctx: PhaseContext<SshTargetConfig>, state: SshState): Promise<Record<string, unknown>> {
    const signal = NEVER_ABORTS;
    return this.#with(ctx.config, signal, async (session) => {
      if (isScript(state)) {
        if (!state.deployed) return { nothing: "the deploy script never ran" };
        const rctx = { ...ctx, signal };
        const rollback = { field: "config.script.rollback", changedBy: "deploy", text: ctx.config.script?.rollback };
        return runRollback(sshScriptHost(session, rctx), rctx, rollback, envFor(ctx, state, "rollback"), scriptTimeout(ctx.config), state.previous);
      }
      return (await this.#dockerDriver(session, ctx.config, signal)).restore({ ...this.#dockerCtx(ctx), signal }, state);
    });
  }

  outcome(ctx: PhaseContext<SshTargetConfig>, state: SshState): DeployOutcome {
    if (isScript(state)) {
      const i = state.image;
      return {
        running: [{ component: i.component, repository: i.repository, digest: i.digest }],
        message: `the deploy script ran ${i.ref} on ${ctx.config.user}@${ctx.config.host}`,
        details: { mode: "script", hostKey: state.hostKey, sticker: state.sticker, health: state["health"] },
      };
    }
    // outcome is pure; the docker driver's needs no engine.
    const docker = new this.#docker!.DockerDriver({ engine: () => ({ docker: undefined as never, socketPath: "", address: "" }) });
    const o = docker.outcome(this.#dockerCtx(ctx), state);
    return { ...o, message: `${o.message} on ${ctx.config.host}`, details: { ...o.details, mode: "docker", sticker: state.sticker } };
  }

  // ----- reading ------------------------------------------------------------------------------------------------

  async inspect(target: TargetRef): Promise<TargetInspection> {
    const config = sshConfig(target.config);
    const signal = AbortSignal.timeout(120_000);
    return this.#with(config, signal, async (session) => {
      const sticker = await readHostSticker(session, config, target.id, signal);
      const base = { host: session.where, hostKey: session.hostKey, stickerPath: stickerPath(config, target.id), sticker: sticker ?? null };
      if (config.mode === "script") {
        return {
          state: sticker ? "running" : "unknown",
          running: sticker ? sticker.images.map((i) => ({ component: i.component, repository: i.repository, digest: i.digest })) : [],
          labels: {},
          details: { ...base, mode: "script", note: "a script target is described by its sticker: what the last successful deploy ran" },
        };
      }
      const docker = await this.#dockerDriver(session, config, signal);
      const seen = await docker.inspect({ ...target, config: config.docker as unknown as Record<string, unknown> });
      return { ...seen, details: { ...seen.details, ...base, mode: "docker" } };
    });
  }

  async readSticker(target: TargetRef): Promise<TargetSticker | undefined> {
    const config = sshConfig(target.config);
    const signal = AbortSignal.timeout(120_000);
    return this.#with(config, signal, async (session) => {
      const sticker = await readHostSticker(session, config, target.id, signal);
      if (sticker) return asTargetSticker(sticker);
      if (config.mode === "script") return undefined;
      return (await this.#dockerDriver(session, config, signal)).readSticker({ ...target, config: config.docker as unknown as Record<string, unknown> });
    });
  }
}

function isScript(state: SshState): state is ScriptState {
  return (state as ScriptState).mode === "script";
}

function envFor(ctx: PhaseContext<SshTargetConfig>, state: ScriptState, script: string): Record<string, string> {
  return scriptEnv(ctx, state.image, state.previous, script, ctx.config.script?.env);
}

function scriptTimeout(config: SshTargetConfig): number {
  return config.script?.timeoutSeconds ?? DEFAULT_SCRIPT_TIMEOUT_SECONDS;
}

function pickScriptImage(ctx: PhaseContext<SshTargetConfig>): ImagePin {
  const pin = ctx.images[0];
  if (!pin) throw new DriverError("RELEASE_COMPONENT_AMBIGUOUS", "config.component: the task carries no image", { field: "config.component" });
  return pin;
}
