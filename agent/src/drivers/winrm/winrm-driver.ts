// The winrm target driver (docs/drivers/winrm.md): a gateway agent drives a Windows host over WS-Management, running
// PowerShell (powershell.ts) through its own WS-Man client (wsman-client.ts).
//
// service  prepare: the service exists, the sticker says what ran · start: stop the service, run the install script,
//          start it · health: it keeps running through the settle window and, when given, healthUrl answers 2xx on
//          the host's loopback · switch: the sticker · restore: stop, run the rollback script, start
// script   as the ssh driver's script mode, in PowerShell: deploy, optional health, rollback on failure (what the two
//          share — environment, output, what an end means, the verdicts — is ../script-target.ts)
//
// Each phase makes its own client (one kept-alive connection, NTLM authenticated once) and closes it. Credentials
// come from the gateway agent's credentials file, read at every phase, so rewriting the file rotates them.
import { promises as fs } from "node:fs";

import { ConfigError, parseTargetConfig, winrmKind, type Capability, type ImagePin, type WinrmTargetConfig } from "@ferry/contract";

import { asTargetSticker, hostStickerFile, parseHostStickerFile, type HostStickerFile } from "../host-sticker-file.js";
import { DriverError, PhaseFailure, type DeployOutcome, type Driver, type HealthReport, type PhaseContext, type PhaseState, type TargetInspection, type TargetRef, type TargetSticker } from "../driver.js";
import { DEFAULT_SCRIPT_TIMEOUT_SECONDS, healthVerdict, noHealthScript, runHostScript, runRollback, scriptEnv, type ScriptHost, type ScriptRun } from "../script-target.js";
import { EXIT, healthScript, MARK, markers, prepareScript, restoreScript, retireScript, startScript } from "./container-scripts.js";
import { runPowerShell, type PsRun } from "./powershell.js";
import { psQuote } from "./ps-quote.js";
import { WsmanClient, WsmanError } from "./wsman-client.js";

export interface WinrmSettings {
  credentialsFile?: string;
  caFile?: string;
}

interface WinrmState extends PhaseState {
  image: ImagePin;
  previous: HostStickerFile | null;
  started?: boolean;
  sticker?: string;
  /** Container mode: what prepare verified and found, and what start did, step by step. */
  container?: {
    imageId: string;
    source: string;
    previous?: { id: string; running: boolean };
    parked?: string;
    newId?: string;
    stopped?: boolean;
  };
}

const NEVER_ABORTS = new AbortController().signal;
const DEFAULT_TIMEOUT_SECONDS = 120;

export function winrmConfig(raw: Record<string, unknown>): WinrmTargetConfig {
  try {
    return parseTargetConfig(winrmKind, raw);
  } catch (err) {
    if (err instanceof ConfigError) throw new DriverError("INVALID_TARGET_CONFIG", err.message, { field: err.path });
    throw err;
  }
}


function stickerPath(config: WinrmTargetConfig, targetId: string): string {
  return config.stickerPath ?? `C:\\ProgramData\\Ferry\\stickers\\${targetId.replace(/[^A-Za-z0-9_.-]/g, "_")}.json`;
}

/** Turns a WS-Man failure into the task's code. */
export function wsmanFailure(err: unknown, where: string): DriverError {
  if (!(err instanceof WsmanError)) return new DriverError("AGENT_ERROR", `${where}: ${(err as Error)?.message ?? String(err)}`);
  const details = { host: where, ...(err.wsmanCode !== undefined ? { wsmanCode: err.wsmanCode } : {}), ...(err.subcode ? { subcode: err.subcode } : {}), ...(err.errno ? { error: err.errno } : {}) };
  if (err.kind === "auth" || err.subcode === "w:AccessDenied" || err.wsmanCode === 5) return new DriverError("WINRM_AUTH_FAILED", `${where}: ${err.message}`, details);
  if (err.kind === "tls") return new DriverError("HOST_CERTIFICATE_REJECTED", `${where}: ${err.message}`, details);
  if (err.kind === "transport") return new DriverError("HOST_UNREACHABLE", `cannot reach ${where}: ${err.message}`, details);
  if (err.subcode === "w:QuotaLimit") return new DriverError("WINRM_QUOTA_EXCEEDED", `${where}: ${err.message}`, details);
  return new DriverError("WINRM_FAULT", `${where}: ${err.message}`, details);
}

/** A script failure whose exit code names a step of container mode, with that step's code. */
function byExit(failure: DriverError, codes: Record<number, string>): DriverError {
  const exit = failure.details["exitCode"];
  const code = failure.code === "SCRIPT_FAILED" && typeof exit === "number" ? codes[exit] : undefined;
  return code ? new DriverError(code, failure.message, failure.details) : failure;
}

/**
 * PowerShell scripts on a Windows host: `env` set as PowerShell single-quoted strings before the script, its own
 * `exit N` the exit code (an error that stops it, with the Stop preference, exits 1).
 */
function psScriptHost(client: WsmanClient, where: string): ScriptHost<PsRun> {
  return {
    where,
    run(_name, script, env, opts) {
      const prelude = Object.entries(env).map(([k, v]) => `$env:${k} = ${psQuote(v)}`).join("; ");
      const full = `$ErrorActionPreference = 'Stop'; $ProgressPreference = 'SilentlyContinue'; ${prelude}\n${script}\nexit $LASTEXITCODE`;
      return runPowerShell(client, full, { timeoutMs: opts.timeoutMs, signal: opts.signal, onLine: opts.onLine });
    },
    commandNotFound: (run) => /CommandNotFoundException|is not recognized as the name of a cmdlet/.test(run.stderr),
    fault: (run) => (run.fault ? wsmanFailure(run.fault, where) : undefined),
  };
}

const CONTAINER_LABELS = (ctx: PhaseContext<WinrmTargetConfig>, i: ImagePin): Record<string, string> => ({
  "ferry.release": ctx.release.id,
  "ferry.release.name": ctx.release.name,
  "ferry.release.version": ctx.release.version,
  "ferry.component": i.component,
  "ferry.digest": i.digest,
  "ferry.deployment": ctx.deploymentId,
  "ferry.task": ctx.taskId,
  "ferry.target": ctx.target.id,
});

export class WinrmDriver implements Driver<WinrmTargetConfig, WinrmState> {
  readonly descriptor = winrmKind;
  readonly #settings: WinrmSettings;

  constructor(opts: { settings?: WinrmSettings } = {}) {
    this.#settings = opts.settings ?? {};
  }

  capabilities(): readonly Capability[] {
    return winrmKind.capabilities;
  }

  async available(): Promise<{ ok: boolean; detail: string }> {
    if (!this.#settings.credentialsFile) return { ok: false, detail: "no credentials: set drivers.winrm.credentialsFile" };
    return { ok: true, detail: `winrm gateway (credentials ${this.#settings.credentialsFile}${this.#settings.caFile ? `, CA ${this.#settings.caFile}` : ", system CAs"})` };
  }

  async #client(config: WinrmTargetConfig): Promise<{ client: WsmanClient; where: string }> {
    const transport = config.transport ?? "https";
    const port = config.port ?? (transport === "https" ? 5986 : 5985);
    const where = `${transport}://${config.host}:${port}/wsman`;
    const file = this.#settings.credentialsFile;
    if (!file) throw new DriverError("WINRM_AUTH_FAILED", "this agent has no WinRM credentials: set drivers.winrm.credentialsFile", {});
    const ref = config.credentialsRef ?? "default";
    let entry: { username?: unknown; password?: unknown } | undefined;
    try {
      entry = (JSON.parse(await fs.readFile(file, "utf8")) as Record<string, { username?: unknown; password?: unknown }>)[ref];
    } catch (err) {
      throw new DriverError("WINRM_AUTH_FAILED", `the agent cannot read its WinRM credentials file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { credentialsFile: file });
    }
    if (!entry || typeof entry.username !== "string" || typeof entry.password !== "string") {
      throw new DriverError("WINRM_AUTH_FAILED", `the WinRM credentials file ${file} has no entry "${ref}" with a username and a password`, { credentialsFile: file, credentialsRef: ref });
    }
    const ca = this.#settings.caFile ? await fs.readFile(this.#settings.caFile) : undefined;
    const client = new WsmanClient({
      endpoint: `${transport}://${config.host.includes(":") && !config.host.startsWith("[") ? `[${config.host}]` : config.host}:${port}/wsman`,
      auth: { method: config.auth ?? "ntlm", username: entry.username, password: entry.password },
      ...(ca ? { ca } : {}),
      ...(config.operationTimeoutSeconds ? { operationTimeoutSeconds: config.operationTimeoutSeconds } : {}),
    });
    return { client, where };
  }

  async #with<T>(config: WinrmTargetConfig, fn: (client: WsmanClient, where: string) => Promise<T>): Promise<T> {
    const { client, where } = await this.#client(config);
    try {
      return await fn(client, where);
    } catch (err) {
      if (err instanceof DriverError || err instanceof PhaseFailure) throw err;
      if (err instanceof WsmanError) throw wsmanFailure(err, where);
      throw err;
    } finally {
      client.close();
    }
  }

  /** Runs `script` with `env` set; a run that did not exit 0 comes with its DriverError. */
  #run(client: WsmanClient, where: string, ctx: Pick<PhaseContext<WinrmTargetConfig>, "progress" | "signal">, name: string, script: string, env: Record<string, string>, timeoutSeconds: number): Promise<ScriptRun<PsRun>> {
    return runHostScript(psScriptHost(client, where), ctx, name, script, env, timeoutSeconds);
  }

  #env(ctx: PhaseContext<WinrmTargetConfig>, state: WinrmState, script: string): Record<string, string> {
    return scriptEnv(ctx, state.image, state.previous, script, ctx.config.service?.env ?? ctx.config.script?.env ?? {});
  }

  async #readSticker(client: WsmanClient, where: string, config: WinrmTargetConfig, targetId: string, signal: AbortSignal): Promise<HostStickerFile | undefined> {
    const file = stickerPath(config, targetId);
    const run = await runPowerShell(client, `if (Test-Path -LiteralPath ${psQuote(file)}) { Get-Content -Raw -LiteralPath ${psQuote(file)} }`, { timeoutMs: 60_000, signal });
    if (run.fault) throw run.fault;
    if (run.exitCode !== 0) throw new DriverError("WINRM_FAULT", `reading the sticker ${file} on ${where} failed (exit code ${run.exitCode ?? "none"})`, { output: run.tail });
    return parseHostStickerFile(run.stdout);
  }

  prepare(ctx: PhaseContext<WinrmTargetConfig>): Promise<WinrmState> {
    return this.#with(ctx.config, async (client, where) => {
      const image = ctx.images[0];
      if (!image) throw new DriverError("RELEASE_COMPONENT_AMBIGUOUS", "config.component: the task carries no image", { field: "config.component" });
      const previous = (await this.#readSticker(client, where, ctx.config, ctx.target.id, ctx.signal)) ?? null;
      ctx.progress.log(previous ? `prepare: the host's sticker says release ${previous.releaseName} ${previous.releaseVersion} runs` : `prepare: no sticker on ${where}`);
      const service = ctx.config.service;
      if (ctx.config.mode === "service" && service) {
        const r = await runPowerShell(client, `if (Get-Service -Name ${psQuote(service.name)} -ErrorAction SilentlyContinue) { exit 0 } else { exit 3 }`, { timeoutMs: 60_000, signal: ctx.signal });
        if (r.fault) throw r.fault;
        if (r.exitCode === 3) throw new DriverError("SERVICE_NOT_FOUND", `${where} has no service named ${service.name}`, { service: service.name });
        if (r.exitCode !== 0) throw new DriverError("WINRM_FAULT", `checking the service ${service.name} on ${where} failed`, { output: r.tail });
        ctx.progress.log(`prepare: the service ${service.name} exists on ${where}`);
      }
      const container = ctx.config.container;
      if (ctx.config.mode === "container" && container) {
        const { run, failure } = await this.#run(client, where, ctx, "prepare", prepareScript(image, container.name), {}, container.timeoutSeconds ?? 600);
        if (failure) throw byExit(failure, { [EXIT.pullFailed]: "IMAGE_PULL_FAILED", [EXIT.digestMismatch]: "DIGEST_MISMATCH" });
        const m = markers(run.stdout);
        const imageId = m.get(MARK.image);
        if (!imageId) throw new DriverError("DIGEST_MISMATCH", `${where}: the engine did not name the image of ${image.ref}`, { output: run.tail });
        const prev = m.get(MARK.previous)?.split("|");
        ctx.progress.log(`prepare: verified: image ${imageId.slice(7, 19)} carries ${image.ref} (${m.get(MARK.source) ?? "?"})`);
        return { image, previous, container: { imageId, source: m.get(MARK.source) ?? "", ...(prev?.[0] ? { previous: { id: prev[0], running: prev[1] === "true" } } : {}) } };
      }
      return { image, previous };
    });
  }

  start(ctx: PhaseContext<WinrmTargetConfig>, state: WinrmState): Promise<WinrmState> {
    return this.#with(ctx.config, async (client, where) => {
      state.started = true;
      const service = ctx.config.service;
      if (ctx.config.mode === "service" && service) {
        const t = service.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
        const body = `Stop-Service -Name ${psQuote(service.name)} -Force\n& { ${service.install} }\nStart-Service -Name ${psQuote(service.name)}`;
        const { failure } = await this.#run(client, where, ctx, "install", body, this.#env(ctx, state, "install"), t);
        if (failure) throw new PhaseFailure(failure, state);
        return state;
      }
      const container = ctx.config.container;
      if (ctx.config.mode === "container" && container && state.container) {
        const c = state.container;
        const { run, failure } = await this.#run(client, where, ctx, "start", startScript(state.image, container, c.imageId, c.previous, CONTAINER_LABELS(ctx, state.image)), {}, container.timeoutSeconds ?? 600);
        // What the script did, step by step, is what restore undoes — also when it failed half-way.
        const m = markers(run.stdout);
        if (m.has(MARK.parked)) c.parked = m.get(MARK.parked)!;
        if (m.has(MARK.created)) c.newId = m.get(MARK.created)!;
        if (m.has(MARK.stopped)) c.stopped = true;
        if (failure) throw new PhaseFailure(byExit(failure, { [EXIT.digestMismatch]: "DIGEST_MISMATCH", 20: "CONTAINER_CREATE_FAILED", 21: "CONTAINER_CREATE_FAILED", 22: "CONTAINER_START_FAILED", 23: "CONTAINER_START_FAILED" }), state);
        return state;
      }
      const s = ctx.config.script!;
      const { failure } = await this.#run(client, where, ctx, "deploy", s.deploy, this.#env(ctx, state, "deploy"), s.timeoutSeconds ?? DEFAULT_SCRIPT_TIMEOUT_SECONDS);
      if (failure) throw new PhaseFailure(failure, state);
      return state;
    });
  }

  health(ctx: PhaseContext<WinrmTargetConfig>, state: WinrmState): Promise<HealthReport> {
    return this.#with(ctx.config, async (client, where) => {
      const service = ctx.config.service;
      let name = "health";
      let script: string | undefined;
      let timeout: number;
      if (ctx.config.mode === "service" && service) {
        timeout = service.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
        name = "check";
        // Running through the settle window (a service that stops or restarts fails), then the URL on the loopback.
        script =
          `$n = ${psQuote(service.name)}; $settle = ${service.settleSeconds ?? 5}; $deadline = (Get-Date).AddSeconds(${timeout})\n` +
          "for ($i = 0; $i -lt $settle; $i++) { if ((Get-Service -Name $n).Status -ne 'Running') { Write-Error \"service $n is $((Get-Service -Name $n).Status)\"; exit 2 }; Start-Sleep -Seconds 1 }\n" +
          (service.healthUrl
            ? `while ($true) { try { $r = Invoke-WebRequest -UseBasicParsing -TimeoutSec 5 -Uri ${psQuote(service.healthUrl)}; if ($r.StatusCode -ge 200 -and $r.StatusCode -lt 300) { exit 0 } } catch { }; if ((Get-Date) -gt $deadline) { Write-Error 'the health URL did not answer 2xx'; exit 1 }; Start-Sleep -Seconds 1 }\n`
            : "exit 0\n");
      } else if (ctx.config.mode === "container" && ctx.config.container && state.container?.newId) {
        name = "check";
        timeout = (ctx.config.container.timeoutSeconds ?? 600) + (ctx.config.container.settleSeconds ?? 5);
        script = healthScript(ctx.config.container, state.container.newId);
      } else {
        script = ctx.config.script?.health;
        timeout = ctx.config.script?.timeoutSeconds ?? DEFAULT_SCRIPT_TIMEOUT_SECONDS;
      }
      if (!script) return noHealthScript();
      const result = await this.#run(client, where, ctx, name, script, this.#env(ctx, state, name), timeout);
      const crashed = (ctx.config.mode === "service" || ctx.config.mode === "container") && result.run.exitCode === EXIT.crashed;
      return healthVerdict(result, name, name, crashed ? "INSTANCE_CRASHED" : "HEALTH_CHECK_FAILED");
    });
  }

  switch(ctx: PhaseContext<WinrmTargetConfig>, state: WinrmState): Promise<WinrmState> {
    return this.#with(ctx.config, async (client, where) => {
      const file = stickerPath(ctx.config, ctx.target.id);
      const sticker = hostStickerFile(ctx);
      const b64 = Buffer.from(JSON.stringify(sticker, null, 2), "utf8").toString("base64");
      // Written beside, then moved over: a reader never sees half a sticker.
      const script =
        `$f = ${psQuote(file)}; New-Item -ItemType Directory -Force -Path (Split-Path -Parent $f) | Out-Null; ` +
        `[IO.File]::WriteAllBytes("$f.tmp", [Convert]::FromBase64String('${b64}')); Move-Item -Force -LiteralPath "$f.tmp" -Destination $f`;
      const run = await runPowerShell(client, script, { timeoutMs: 60_000, signal: ctx.signal });
      if (run.fault) throw run.fault;
      if (run.exitCode !== 0) throw new DriverError("WINRM_FAULT", `writing the sticker ${file} on ${where} failed`, { output: run.tail });
      ctx.progress.log(`switch: wrote the sticker ${file} on ${where}`);
      return { ...state, sticker: file };
    });
  }

  async retire(ctx: PhaseContext<WinrmTargetConfig>, state: WinrmState): Promise<WinrmState> {
    const parked = state.container?.parked;
    if (ctx.config.mode !== "container" || !parked) {
      ctx.progress.log("retire: nothing served before that is still there to remove");
      return state;
    }
    return this.#with(ctx.config, async (client, where) => {
      const { failure } = await this.#run(client, where, ctx, "retire", retireScript(parked), {}, 120);
      if (failure) throw failure;
      ctx.progress.log(`retire: removed ${parked}`);
      return state;
    });
  }

  restore(ctx: PhaseContext<WinrmTargetConfig>, state: WinrmState): Promise<Record<string, unknown>> {
    const rctx = { ...ctx, signal: NEVER_ABORTS };
    return this.#with(ctx.config, async (client, where) => {
      if (!state.started) return { nothing: "nothing ran on the host" };
      const c = state.container;
      if (ctx.config.mode === "container" && ctx.config.container && c) {
        const { failure } = await this.#run(client, where, rctx, "restore", restoreScript(ctx.config.container.name, c.newId, c.parked, c.previous?.running === true), {}, 300);
        if (failure) throw new Error(failure.message);
        return { removed: c.newId ?? null, container: c.previous?.id ?? null, restarted: !!c.parked && c.previous?.running === true };
      }
      const service = ctx.config.mode === "service" ? ctx.config.service : undefined;
      const rollback = service ? service.rollback : ctx.config.script?.rollback;
      // A service's rollback script runs as its install script does: with the service stopped, started after.
      const text = service && rollback ? `Stop-Service -Name ${psQuote(service.name)} -Force\n& { ${rollback} }\nStart-Service -Name ${psQuote(service.name)}` : rollback;
      const timeout = (ctx.config.service?.timeoutSeconds ?? ctx.config.script?.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS);
      const what = service ? { field: "config.service.rollback", changedBy: "install" } : { field: "config.script.rollback", changedBy: "deploy" };
      return runRollback(psScriptHost(client, where), rctx, { ...what, text }, this.#env(ctx, state, "rollback"), timeout, state.previous);
    });
  }

  outcome(ctx: PhaseContext<WinrmTargetConfig>, state: WinrmState): DeployOutcome {
    const i = state.image;
    return {
      running: [{ component: i.component, repository: i.repository, digest: i.digest }],
      message: `${ctx.config.mode === "service" ? `the service ${ctx.config.service?.name}` : ctx.config.mode === "container" ? `the container ${ctx.config.container?.name}` : "the deploy script"} runs ${i.ref} on ${ctx.config.host}`,
      details: { mode: ctx.config.mode ?? "script", sticker: state.sticker, health: state["health"], ...(state.container ? { container: state.container } : {}) },
    };
  }

  async inspect(target: TargetRef): Promise<TargetInspection> {
    const config = winrmConfig(target.config);
    return this.#with(config, async (client, where) => {
      const sticker = await this.#readSticker(client, where, config, target.id, AbortSignal.timeout(120_000));
      return {
        state: sticker ? "running" : "unknown",
        running: sticker ? sticker.images.map((x) => ({ component: x.component, repository: x.repository, digest: x.digest })) : [],
        labels: {},
        details: { host: where, stickerPath: stickerPath(config, target.id), sticker: sticker ?? null },
      };
    });
  }

  async readSticker(target: TargetRef): Promise<TargetSticker | undefined> {
    const config = winrmConfig(target.config);
    return this.#with(config, async (client, where) => {
      const s = await this.#readSticker(client, where, config, target.id, AbortSignal.timeout(120_000));
      return s ? asTargetSticker(s) : undefined;
    });
  }
}
