import assert from "node:assert/strict";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";

import type { ObjectSchema } from "@ferry/contract";

import { AgentError } from "../core/agent-error.js";
import { resolveAgentConfig, type AgentFlags, type DriverSettingsSource } from "./agent-config.js";
import { describeAgentConfig, formatConfigRows, REDACTED } from "./describe-config.js";
import { camelFromSnake, driverEnvName, snakeFromCamel } from "./driver-settings.js";

// Small registrations of our own: the resolver must work from whatever schemas it is given.
const dockerLike: DriverSettingsSource = {
  descriptor: { kind: "docker" },
  enabledByDefault: true,
  settings: {
    fields: {
      socket: { type: "string", maxLength: 4096, pattern: /^\//, hint: "must be an absolute path" },
      stopTimeoutSeconds: { type: "integer", min: 1, max: 600 },
      settleSeconds: { type: "integer", min: 0, max: 600 },
    },
  },
};
const remoteSchema: ObjectSchema = {
  fields: {
    endpoint: { type: "string", required: true, pattern: /^https:\/\//, hint: "must be an https URL" },
    retries: { type: "integer", min: 0, max: 5 },
    verbose: { type: "boolean" },
    regions: { type: "string-list", maxItems: 4 },
    apiToken: { type: "string" },
    limits: { type: "object", fields: { max: { type: "integer", min: 1, max: 10 } } },
  },
  rules: [(o) => (o["verbose"] === true && o["retries"] === 0 ? ["retries", "must be above 0 when verbose is true"] : undefined)],
};
const remote: DriverSettingsSource = { descriptor: { kind: "remote-x" }, enabledByDefault: false, settings: remoteSchema };
const REGS = [dockerLike, remote];

const root = mkdtempSync(join(tmpdir(), "ferry-agent-config-"));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

/** A fresh state directory, optionally with an agent.json in it. */
function stateDir(file?: unknown, mode = 0o600): string {
  const dir = join(root, `state-${++n}`);
  mkdirSync(dir, { mode: 0o700 });
  if (file !== undefined) writeConfig(join(dir, "agent.json"), file, mode);
  return dir;
}

function writeConfig(path: string, content: unknown, mode = 0o600): string {
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content), { mode });
  chmodSync(path, mode);
  return path;
}

function resolve(flags: AgentFlags, env: NodeJS.ProcessEnv = {}, registrations: readonly DriverSettingsSource[] = REGS) {
  return resolveAgentConfig({ flags, env, cwd: root, registrations });
}

function refuses(fn: () => unknown, message: RegExp, code = "CONFIG_INVALID"): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof AgentError, `not an AgentError: ${String(err)}`);
    assert.equal(err.kind, "usage");
    assert.equal(err.code, code);
    assert.match(err.message, message);
    return true;
  });
}

describe("agent config: defaults and precedence", () => {
  it("fills the documented defaults and marks their origin", () => {
    const dir = stateDir();
    const c = resolve({ stateDir: dir });
    assert.equal(c.stateDir, dir);
    assert.equal(c.logLevel, "info");
    assert.equal(c.observeIntervalSeconds, 60);
    assert.equal(c.registryAuthFile, null);
    assert.equal(c.configFile, null);
    assert.deepEqual(c.drivers, { docker: { enabled: true, settings: {} }, "remote-x": { enabled: false, settings: {} } });
    assert.deepEqual(c.origins["stateDir"], { source: "flag", name: "--state-dir" });
    assert.deepEqual(c.origins["logLevel"], { source: "default", name: "default" });
    assert.deepEqual(c.origins["drivers.docker.enabled"], { source: "default", name: "default" });
  });

  it("takes flags over environment over file over defaults, value by value, with each origin", () => {
    const dir = stateDir({
      logLevel: "warn",
      observeIntervalSeconds: 30,
      registryAuthFile: "auth.json",
      drivers: { docker: { socket: "/file.sock", stopTimeoutSeconds: 20, settleSeconds: 5 } },
    });
    const c = resolve(
      { stateDir: dir, logLevel: "error", driver: ["docker.socket=/flag.sock"] },
      { FERRY_AGENT_LOG_LEVEL: "debug", FERRY_AGENT_OBSERVE_INTERVAL: "20", FERRY_AGENT_DRIVER_DOCKER_STOP_TIMEOUT_SECONDS: "15" },
    );
    const file = join(dir, "agent.json");
    assert.equal(c.configFile, file);
    assert.equal(c.logLevel, "error");
    assert.equal(c.observeIntervalSeconds, 20);
    // Relative paths in the file are resolved against the file's directory.
    assert.equal(c.registryAuthFile, join(dir, "auth.json"));
    assert.deepEqual(c.drivers["docker"], { enabled: true, settings: { socket: "/flag.sock", stopTimeoutSeconds: 15, settleSeconds: 5 } });
    assert.deepEqual(c.origins["logLevel"], { source: "flag", name: "--log-level" });
    assert.deepEqual(c.origins["observeIntervalSeconds"], { source: "env", name: "FERRY_AGENT_OBSERVE_INTERVAL" });
    assert.deepEqual(c.origins["registryAuthFile"], { source: "file", name: `${file} registryAuthFile` });
    assert.deepEqual(c.origins["drivers.docker.socket"], { source: "flag", name: "--driver docker.socket" });
    assert.deepEqual(c.origins["drivers.docker.stopTimeoutSeconds"], { source: "env", name: "FERRY_AGENT_DRIVER_DOCKER_STOP_TIMEOUT_SECONDS" });
    assert.deepEqual(c.origins["drivers.docker.settleSeconds"], { source: "file", name: `${file} drivers.docker.settleSeconds` });
  });

  it("resolves relative paths from flags and environment against the working directory", () => {
    const c = resolve({ stateDir: "rel-state", registryAuth: "creds.json" });
    assert.equal(c.stateDir, join(root, "rel-state"));
    assert.equal(c.registryAuthFile, join(root, "creds.json"));
    const e = resolve({}, { FERRY_AGENT_STATE_DIR: "from-env" });
    assert.equal(e.stateDir, join(root, "from-env"));
    assert.deepEqual(e.origins["stateDir"], { source: "env", name: "FERRY_AGENT_STATE_DIR" });
  });

  it("counts empty environment variables and empty flags as unset", () => {
    const dir = stateDir();
    const c = resolve({ stateDir: dir, logLevel: "" }, { FERRY_AGENT_LOG_LEVEL: "", FERRY_AGENT_OBSERVE_INTERVAL: "", FERRY_AGENT_DRIVER_DOCKER_SOCKET: "" });
    assert.equal(c.logLevel, "info");
    assert.deepEqual(c.drivers["docker"]?.settings, {});
  });

  it("parses driver settings from text by the field's type", () => {
    const c = resolve(
      { stateDir: stateDir(), driver: ["remote-x.endpoint=https://r.example", "remote-x.retries=3", "remote-x.limits={\"max\":4}"] },
      { FERRY_AGENT_DRIVER_REMOTE_X_VERBOSE: "true", FERRY_AGENT_DRIVER_REMOTE_X_REGIONS: "eu-1, us-2," },
    );
    assert.deepEqual(c.drivers["remote-x"], {
      enabled: true,
      settings: { endpoint: "https://r.example", retries: 3, verbose: true, regions: ["eu-1", "us-2"], limits: { max: 4 } },
    });
  });

  it("lets a repeated --driver flag for one key end with the last", () => {
    const c = resolve({ stateDir: stateDir(), driver: ["docker.settleSeconds=1", "docker.settleSeconds=9"] });
    assert.equal(c.drivers["docker"]?.settings["settleSeconds"], 9);
  });
});

describe("agent config: the config file", () => {
  it("reads --config over FERRY_AGENT_CONFIG over <state-dir>/agent.json, and only one of them", () => {
    const dir = stateDir({ logLevel: "warn", observeIntervalSeconds: 5 });
    const viaEnv = writeConfig(join(root, "env.json"), { logLevel: "debug" });
    const viaFlag = writeConfig(join(root, "flag.json"), { logLevel: "trace" });
    assert.equal(resolve({ stateDir: dir }).logLevel, "warn");
    const e = resolve({ stateDir: dir }, { FERRY_AGENT_CONFIG: viaEnv });
    assert.equal(e.logLevel, "debug");
    assert.equal(e.observeIntervalSeconds, 60, "the implicit agent.json is not read when a file is named");
    assert.deepEqual(e.origins["configFile"], { source: "env", name: "FERRY_AGENT_CONFIG" });
    const f = resolve({ stateDir: dir, config: "flag.json" }, { FERRY_AGENT_CONFIG: viaEnv });
    assert.equal(f.configFile, viaFlag);
    assert.equal(f.logLevel, "trace");
  });

  it("takes the state directory from a named file, relative to the file", () => {
    const sub = join(root, "etc-1");
    mkdirSync(sub);
    const file = writeConfig(join(sub, "agent.json"), { stateDir: "state" });
    const c = resolve({ config: file });
    assert.equal(c.stateDir, join(sub, "state"));
    refuses(() => resolve({ config: writeConfig(join(sub, "empty.json"), {}) }), /--state-dir is required \(or set FERRY_AGENT_STATE_DIR\), or stateDir in/, "USAGE");
  });

  it("refuses a state directory named in the state directory's own agent.json", () => {
    const dir = stateDir({ stateDir: "/elsewhere" });
    refuses(() => resolve({ stateDir: dir }), /agent\.json stateDir: cannot be set in the state directory's own agent\.json/);
  });

  it("refuses a missing named file, bad JSON, a non-object, unknown keys and nulls", () => {
    refuses(() => resolve({ stateDir: stateDir(), config: "nope.json" }), /nope\.json: cannot be read: ENOENT/);
    refuses(() => resolve({ stateDir: stateDir("{not json") }), /agent\.json: is not valid JSON/);
    refuses(() => resolve({ stateDir: stateDir("[1]") }), /agent\.json: must hold a JSON object/);
    refuses(() => resolve({ stateDir: stateDir({ logLevl: "info" }) }), /agent\.json logLevl: unknown setting \(known: stateDir, logLevel, observeIntervalSeconds, registryAuthFile, drivers\)/);
    refuses(() => resolve({ stateDir: stateDir({ drivers: { docker: { socket: null } } }) }), /agent\.json drivers\.docker\.socket: must not be null/);
    refuses(() => resolve({ stateDir: stateDir({ drivers: [] }) }), /agent\.json drivers: must be an object of driver sections/);
    refuses(() => resolve({ stateDir: stateDir({ drivers: { docker: true } }) }), /agent\.json drivers\.docker: must be an object/);
    refuses(() => resolve({ stateDir: stateDir({ registryAuthFile: 7 }) }), /agent\.json registryAuthFile: must be a non-empty string/);
  });

  it("refuses a file group or others may write, and one too large to be a config", () => {
    refuses(() => resolve({ stateDir: stateDir({}, 0o664) }), /agent\.json is writable by group or others \(mode 664\).*chmod go-w/, "CONFIG_INSECURE");
    refuses(() => resolve({ stateDir: stateDir({}, 0o602) }), /writable by group or others \(mode 602\)/, "CONFIG_INSECURE");
    // Readable by all is fine: the file holds no secret.
    assert.equal(resolve({ stateDir: stateDir({ logLevel: "warn" }, 0o644) }).logLevel, "warn");
    refuses(() => resolve({ stateDir: stateDir(" ".repeat(70_000)) }), /agent\.json: is 70000 bytes; a config file may have at most 65536/);
    // Only root can give a file away; elsewhere the owner rule is covered by the same code path as the mode rule.
    if (process.getuid?.() === 0) {
      const dir = stateDir({ logLevel: "warn" }, 0o644);
      chownSync(join(dir, "agent.json"), 4242, 4242);
      refuses(() => resolve({ stateDir: dir }), /agent\.json belongs to uid 4242, neither this agent's user \(uid 0\) nor root; chown it/, "CONFIG_INSECURE");
    }
    const dirAsFile = join(root, "a-dir");
    mkdirSync(dirAsFile);
    refuses(() => resolve({ stateDir: stateDir(), config: dirAsFile }), /a-dir: is not a regular file/);
  });
});

describe("agent config: every bad value names its source", () => {
  it("bounds the observe interval from each source", () => {
    const dir = stateDir();
    refuses(() => resolve({ stateDir: dir, observeInterval: "0.5" }), /^--observe-interval: "0.5" is not a number of seconds from 1 to 86400$/);
    refuses(() => resolve({ stateDir: dir }, { FERRY_AGENT_OBSERVE_INTERVAL: "1e3" }), /^FERRY_AGENT_OBSERVE_INTERVAL: "1e3" is not a number/);
    refuses(() => resolve({ stateDir: dir }, { FERRY_AGENT_OBSERVE_INTERVAL: "86401" }), /^FERRY_AGENT_OBSERVE_INTERVAL: "86401"/);
    refuses(() => resolve({ stateDir: stateDir({ observeIntervalSeconds: "60" }) }), /agent\.json observeIntervalSeconds: "60" is not a number of seconds/);
    refuses(() => resolve({ stateDir: stateDir({ observeIntervalSeconds: 0 }) }), /agent\.json observeIntervalSeconds: 0 is not a number of seconds from 1 to 86400/);
    assert.equal(resolve({ stateDir: dir, observeInterval: "1.5" }).observeIntervalSeconds, 1.5);
  });

  it("refuses an unknown log level from each source", () => {
    refuses(() => resolve({ stateDir: stateDir(), logLevel: "loud" }), /^--log-level: "loud" is not one of fatal, error/);
    refuses(() => resolve({ stateDir: stateDir() }, { FERRY_AGENT_LOG_LEVEL: "LOUD" }), /^FERRY_AGENT_LOG_LEVEL: "LOUD"/);
    refuses(() => resolve({ stateDir: stateDir({ logLevel: 3 }) }), /agent\.json logLevel: 3 is not one of/);
  });

  it("checks a value even when a higher source overrides it", () => {
    refuses(() => resolve({ stateDir: stateDir({ observeIntervalSeconds: -1 }), observeInterval: "10" }), /agent\.json observeIntervalSeconds: -1/);
    refuses(() => resolve({ stateDir: stateDir(), observeInterval: "10" }, { FERRY_AGENT_OBSERVE_INTERVAL: "soon" }), /^FERRY_AGENT_OBSERVE_INTERVAL: "soon"/);
  });

  it("refuses an unknown driver kind from each source", () => {
    refuses(() => resolve({ stateDir: stateDir(), driver: ["podman.socket=/x"] }), /^--driver podman\.socket: unknown driver kind "podman" \(known: docker, remote-x\)$/);
    refuses(() => resolve({ stateDir: stateDir() }, { FERRY_AGENT_DRIVER_PODMAN_SOCKET: "/x" }), /^FERRY_AGENT_DRIVER_PODMAN_SOCKET: no driver kind matches \(known: docker, remote-x;/);
    refuses(() => resolve({ stateDir: stateDir({ drivers: { podman: {} } }) }), /agent\.json drivers\.podman: unknown driver kind "podman"/);
  });

  it("refuses an unknown driver setting from each source, listing the known ones", () => {
    refuses(() => resolve({ stateDir: stateDir(), driver: ["docker.sockt=/x"] }), /^--driver docker\.sockt: unknown setting "sockt" of driver docker \(known: enabled, socket, stopTimeoutSeconds, settleSeconds\)$/);
    refuses(
      () => resolve({ stateDir: stateDir() }, { FERRY_AGENT_DRIVER_DOCKER_SOCKT: "/x" }),
      /^FERRY_AGENT_DRIVER_DOCKER_SOCKT: unknown setting of driver docker \(known: FERRY_AGENT_DRIVER_DOCKER_ENABLED, FERRY_AGENT_DRIVER_DOCKER_SOCKET, FERRY_AGENT_DRIVER_DOCKER_STOP_TIMEOUT_SECONDS/,
    );
    refuses(() => resolve({ stateDir: stateDir({ drivers: { docker: { sockt: "/x" } } }) }), /agent\.json drivers\.docker\.sockt: unknown setting "sockt" of driver docker/);
  });

  it("refuses a bad driver setting from each source", () => {
    // flags
    refuses(() => resolve({ stateDir: stateDir(), driver: ["docker.socket=run/docker.sock"] }), /^--driver docker\.socket: must be an absolute path$/);
    refuses(() => resolve({ stateDir: stateDir(), driver: ["docker.stopTimeoutSeconds=ten"] }), /^--driver docker\.stopTimeoutSeconds: "ten" is not a whole number$/);
    refuses(() => resolve({ stateDir: stateDir(), driver: ["docker.stopTimeoutSeconds=601"] }), /^--driver docker\.stopTimeoutSeconds: must be at most 600$/);
    refuses(() => resolve({ stateDir: stateDir(), driver: ["docker.enabled=yes"] }), /^--driver docker\.enabled: "yes" is not true or false$/);
    refuses(() => resolve({ stateDir: stateDir(), driver: ["remote-x.limits={\"max\":11}"] }), /^--driver remote-x\.limits\.max: must be at most 10$/);
    refuses(() => resolve({ stateDir: stateDir(), driver: ["remote-x.limits={oops"] }), /^--driver remote-x\.limits: is not valid JSON/);
    // environment
    refuses(() => resolve({ stateDir: stateDir() }, { FERRY_AGENT_DRIVER_DOCKER_SETTLE_SECONDS: "-1" }), /^FERRY_AGENT_DRIVER_DOCKER_SETTLE_SECONDS: must be at least 0$/);
    refuses(() => resolve({ stateDir: stateDir() }, { FERRY_AGENT_DRIVER_DOCKER_ENABLED: "off" }), /^FERRY_AGENT_DRIVER_DOCKER_ENABLED: "off" is not true or false$/);
    // file: JSON values are taken as they are, so a number in quotes is a string
    refuses(() => resolve({ stateDir: stateDir({ drivers: { docker: { stopTimeoutSeconds: "30" } } }) }), /agent\.json drivers\.docker\.stopTimeoutSeconds: must be a whole number$/);
    refuses(() => resolve({ stateDir: stateDir({ drivers: { docker: { socket: "" } } }) }), /agent\.json drivers\.docker\.socket: must be a non-empty string$/);
    refuses(() => resolve({ stateDir: stateDir({ drivers: { docker: { enabled: "false" } } }) }), /agent\.json drivers\.docker\.enabled: must be true or false$/);
  });

  it("refuses a malformed --driver flag without echoing its value", () => {
    refuses(() => resolve({ stateDir: stateDir(), driver: ["docker-socket=/x"] }), /^--driver: "docker-socket" is not KIND\.KEY=VALUE/);
    refuses(() => resolve({ stateDir: stateDir(), driver: ["docker.socket"] }), /^--driver: "docker\.socket" is not KIND\.KEY=VALUE/);
    refuses(() => resolve({ stateDir: stateDir(), driver: ["remote-x.apiToken="] }), /^--driver remote-x\.apiToken: needs a value/);
  });

  it("requires a required setting only of a driver that will run, and names where to set it", () => {
    refuses(
      () => resolve({ stateDir: stateDir(), driver: ["remote-x.enabled=true"] }),
      /^drivers\.remote-x\.endpoint: is required \(set it with --driver remote-x\.endpoint=…, FERRY_AGENT_DRIVER_REMOTE_X_ENDPOINT, or drivers\.remote-x\.endpoint in the config file\)$/,
    );
    const off = resolve({ stateDir: stateDir({ drivers: { "remote-x": { enabled: false, retries: 2 } } }) });
    assert.deepEqual(off.drivers["remote-x"], { enabled: false, settings: { retries: 2 } });
  });

  it("names the origin of a setting that breaks a cross-field rule", () => {
    refuses(
      () => resolve({ stateDir: stateDir({ drivers: { "remote-x": { endpoint: "https://r", verbose: true } } }) }, { FERRY_AGENT_DRIVER_REMOTE_X_RETRIES: "0" }),
      /^FERRY_AGENT_DRIVER_REMOTE_X_RETRIES: must be above 0 when verbose is true$/,
    );
  });

  it("requires a state directory", () => {
    refuses(() => resolve({}), /^--state-dir is required \(or set FERRY_AGENT_STATE_DIR\)$/, "USAGE");
  });
});

describe("agent config: driver sections", () => {
  it("enables a driver whose settings are given, unless it is switched off", () => {
    const on = resolve({ stateDir: stateDir() }, { FERRY_AGENT_DRIVER_REMOTE_X_ENDPOINT: "https://r" });
    assert.equal(on.drivers["remote-x"]?.enabled, true);
    assert.deepEqual(on.origins["drivers.remote-x.enabled"], { source: "default", name: "implied: settings given" });
    const off = resolve({ stateDir: stateDir(), driver: ["remote-x.enabled=false"] }, { FERRY_AGENT_DRIVER_REMOTE_X_ENDPOINT: "https://r" });
    assert.equal(off.drivers["remote-x"]?.enabled, false);
  });

  it("maps SCREAMING_SNAKE keys to camelCase and back", () => {
    assert.equal(camelFromSnake("STOP_TIMEOUT_SECONDS"), "stopTimeoutSeconds");
    assert.equal(snakeFromCamel("stopTimeoutSeconds"), "STOP_TIMEOUT_SECONDS");
    assert.equal(driverEnvName("remote-x", "apiToken"), "FERRY_AGENT_DRIVER_REMOTE_X_API_TOKEN");
  });

  it("refuses registrations it cannot serve: unbounded numbers, a setting called enabled, a kind twice", () => {
    const unbounded: DriverSettingsSource = { descriptor: { kind: "u" }, enabledByDefault: false, settings: { fields: { n: { type: "integer", min: 0 } } } };
    assert.throws(() => resolve({ stateDir: stateDir() }, {}, [unbounded]), /drivers\.u\.n is a number without min and max/);
    const nested: DriverSettingsSource = {
      descriptor: { kind: "v" },
      enabledByDefault: false,
      settings: { fields: { o: { type: "list", items: { n: { type: "integer", max: 3 } } } } },
    };
    assert.throws(() => resolve({ stateDir: stateDir() }, {}, [nested]), /drivers\.v\.o\[\]\.n is a number without min and max/);
    const reserved: DriverSettingsSource = { descriptor: { kind: "w" }, enabledByDefault: false, settings: { fields: { enabled: { type: "boolean" } } } };
    assert.throws(() => resolve({ stateDir: stateDir() }, {}, [reserved]), /"enabled" is reserved/);
    assert.throws(() => resolve({ stateDir: stateDir() }, {}, [dockerLike, dockerLike]), /registered twice/);
  });
});

describe("agent config: --docker-socket and FERRY_AGENT_DOCKER_SOCKET", () => {
  it("are aliases of drivers.docker.socket, at their own source's rank", () => {
    const f = resolve({ stateDir: stateDir(), dockerSocket: "/run/d.sock" });
    assert.deepEqual(f.drivers["docker"], { enabled: true, settings: { socket: "/run/d.sock" } });
    assert.deepEqual(f.origins["drivers.docker.socket"], { source: "flag", name: "--docker-socket" });
    const e = resolve({ stateDir: stateDir({ drivers: { docker: { socket: "/file.sock" } } }) }, { FERRY_AGENT_DOCKER_SOCKET: "/env.sock" });
    assert.equal(e.drivers["docker"]?.settings["socket"], "/env.sock");
    assert.deepEqual(e.origins["drivers.docker.socket"], { source: "env", name: "FERRY_AGENT_DOCKER_SOCKET" });
    // A flag of either spelling beats the environment alias.
    const both = resolve({ stateDir: stateDir(), driver: ["docker.socket=/flag.sock"] }, { FERRY_AGENT_DOCKER_SOCKET: "/env.sock" });
    assert.equal(both.drivers["docker"]?.settings["socket"], "/flag.sock");
  });

  it("take \"off\" as drivers.docker.enabled=false", () => {
    const f = resolve({ stateDir: stateDir(), dockerSocket: "off" });
    assert.deepEqual(f.drivers["docker"], { enabled: false, settings: {} });
    assert.deepEqual(f.origins["drivers.docker.enabled"], { source: "flag", name: "--docker-socket" });
    const e = resolve({ stateDir: stateDir() }, { FERRY_AGENT_DOCKER_SOCKET: "off" });
    assert.equal(e.drivers["docker"]?.enabled, false);
  });

  it("are checked like the setting they stand for", () => {
    refuses(() => resolve({ stateDir: stateDir(), dockerSocket: "docker.sock" }), /^--docker-socket: must be an absolute path$/);
    refuses(() => resolve({ stateDir: stateDir() }, { FERRY_AGENT_DOCKER_SOCKET: "tcp://host:2375" }), /^FERRY_AGENT_DOCKER_SOCKET: must be an absolute path$/);
  });

  it("refuse two spellings of one setting in one source", () => {
    refuses(() => resolve({ stateDir: stateDir(), dockerSocket: "/a.sock", driver: ["docker.socket=/b.sock"] }), /^--docker-socket: --driver docker\.socket also sets drivers\.docker\.socket; keep one$/);
    refuses(
      () => resolve({ stateDir: stateDir() }, { FERRY_AGENT_DRIVER_DOCKER_ENABLED: "true", FERRY_AGENT_DOCKER_SOCKET: "off" }),
      /^FERRY_AGENT_DOCKER_SOCKET: FERRY_AGENT_DRIVER_DOCKER_ENABLED also sets drivers\.docker\.enabled; keep one$/,
    );
  });

  it("are refused by an agent without a docker driver", () => {
    refuses(() => resolve({ stateDir: stateDir(), dockerSocket: "/x.sock" }, {}, [remote]), /^--docker-socket: this agent has no docker driver \(known: remote-x\)$/);
  });
});

describe("agent config: describing what won", () => {
  it("lists every value with its origin, unset driver settings included, secrets redacted", () => {
    const dir = stateDir({ observeIntervalSeconds: 30 });
    const c = resolve(
      { stateDir: dir, driver: ["remote-x.endpoint=https://r", "remote-x.apiToken=hunter2"] },
      { FERRY_AGENT_DOCKER_SOCKET: "/run/d.sock" },
    );
    const rows = describeAgentConfig(c, REGS);
    const row = (key: string) => rows.find((r) => r.key === key);
    assert.deepEqual(row("configFile"), { key: "configFile", value: join(dir, "agent.json"), source: "default", from: "agent.json in the state directory" });
    assert.deepEqual(row("observeIntervalSeconds"), { key: "observeIntervalSeconds", value: 30, source: "file", from: `${join(dir, "agent.json")} observeIntervalSeconds` });
    assert.deepEqual(row("drivers.docker.socket"), { key: "drivers.docker.socket", value: "/run/d.sock", source: "env", from: "FERRY_AGENT_DOCKER_SOCKET" });
    assert.deepEqual(row("drivers.docker.stopTimeoutSeconds"), { key: "drivers.docker.stopTimeoutSeconds", value: undefined, source: "default", from: "driver default" });
    assert.deepEqual(row("drivers.remote-x.apiToken"), { key: "drivers.remote-x.apiToken", value: REDACTED, source: "flag", from: "--driver remote-x.apiToken" });
    const text = formatConfigRows(rows);
    assert.ok(!text.includes("hunter2"), "a secret was printed");
    assert.match(text, /^registryAuthFile +\(none\) +default$/m);
    assert.match(text, /^drivers\.docker\.enabled +true +default$/m);
    assert.match(text, /^drivers\.remote-x\.regions +- +driver default$/m);
  });
});
