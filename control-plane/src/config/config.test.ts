import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { FerryError } from "../domain/errors.js";
import { resolveConfig } from "./config.js";

describe("config", () => {
  it("uses loopback defaults and derives liveness settings from the interval", () => {
    const c = resolveConfig({}, {}, "/srv");
    assert.equal(c.dataDir, "/srv/.ferry");
    assert.deepEqual(c.apiListen, { host: "127.0.0.1", port: 7070 });
    assert.deepEqual(c.agentListen, { host: "127.0.0.1", port: 7071 });
    assert.deepEqual(c.enrolListen, { host: "127.0.0.1", port: 7072 });
    assert.equal(c.heartbeatIntervalMs, 15_000);
    assert.equal(c.livenessGraceMs, 15_000);
    assert.equal(c.lastSeenFlushMs, 30_000);
    assert.equal(c.certLifetimeMs, 86_400_000);
    assert.equal(c.advertiseEnrol, "127.0.0.1:7072");
    assert.equal(c.databaseUrl, null);
  });

  it("takes flags over environment over file over defaults", () => {
    const dir = mkdtempSync(join(tmpdir(), "ferry-config-"));
    try {
      writeFileSync(join(dir, "ferry.json"), JSON.stringify({ heartbeatInterval: "5s", logLevel: "warn", certLifetime: "12h" }));
      const c = resolveConfig({ heartbeatInterval: "1s" }, { FERRY_DATA_DIR: dir, FERRY_LOG_LEVEL: "debug" }, "/");
      assert.equal(c.heartbeatIntervalMs, 1000);
      assert.equal(c.logLevel, "debug");
      assert.equal(c.certLifetimeMs, 43_200_000);
      // 2 × interval + grace (the grace defaults to one interval).
      assert.equal(c.lastSeenFlushMs, 3000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("advertises the host name when listening on every interface", () => {
    const c = resolveConfig({ agentListen: "0.0.0.0:7071", enrolListen: "[::]:7072", advertiseHost: "ferry.example.internal" }, {}, "/");
    assert.equal(c.advertiseAgent, "ferry.example.internal:7071");
    assert.equal(c.advertiseEnrol, "ferry.example.internal:7072");
    assert.ok(c.tlsHosts.includes("ferry.example.internal"));
  });

  it("refuses bad values with the setting's name", () => {
    const bad: Array<[Record<string, string>, RegExp]> = [
      [{ apiListen: "localhost" }, /^api-listen:/],
      [{ agentListen: "127.0.0.1:99999" }, /^agent-listen:/],
      [{ heartbeatInterval: "soon" }, /^heartbeat-interval:/],
      [{ heartbeatInterval: "10ms" }, /^heartbeat-interval:/],
      [{ streamRate: "-1" }, /^stream-rate:/],
      [{ logFormat: "xml" }, /^log-format:/],
      [{ lastSeenFlush: "2m" }, /last-seen-flush/],
      // Every duration is bounded: an overflow would otherwise reach the wire, a Date or a timer.
      [{ taskTtl: "99999999999999h" }, /^task-ttl: must be between/],
      [{ certLifetime: "400d" }, /^cert-lifetime: must be between/],
      [{ taskLease: "30d" }, /^task-lease: must be between/],
      [{ taskSweepInterval: "25d" }, /^task-sweep-interval: must be between/],
      [{ promotionTtl: "9999999d" }, /^promotion-ttl: must be between/],
    ];
    for (const [flags, re] of bad) {
      assert.throws(() => resolveConfig(flags, {}, "/"), (e: unknown) => e instanceof FerryError && e.code === "VALIDATION_FAILED" && re.test(e.message), JSON.stringify(flags));
    }
  });

  it("refuses unknown settings in a config file", () => {
    const dir = mkdtempSync(join(tmpdir(), "ferry-config-"));
    try {
      writeFileSync(join(dir, "f.json"), JSON.stringify({ heartbeatIntervall: "5s" }));
      assert.throws(() => resolveConfig({ config: join(dir, "f.json") }, {}, "/"), /unknown setting "heartbeatIntervall"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("serves the API over HTTPS off loopback unless told otherwise, and checks the TLS settings", () => {
    assert.deepEqual(resolveConfig({}, {}, "/srv").apiTls, { mode: "off" });
    assert.deepEqual(resolveConfig({ apiListen: "[::1]:7070" }, {}, "/srv").apiTls, { mode: "off" });
    assert.deepEqual(resolveConfig({ apiListen: "0.0.0.0:7070" }, {}, "/srv").apiTls, { mode: "auto" });
    assert.deepEqual(resolveConfig({ apiListen: "0.0.0.0:7070", apiTls: "off" }, {}, "/srv").apiTls, { mode: "off" });
    assert.deepEqual(resolveConfig({}, { FERRY_API_TLS: "auto" }, "/srv").apiTls, { mode: "auto" });
    assert.deepEqual(resolveConfig({ apiTlsCert: "tls/api.crt", apiTlsKey: "tls/api.key" }, {}, "/srv").apiTls, { mode: "files", certFile: "/srv/tls/api.crt", keyFile: "/srv/tls/api.key" });
    const field = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        assert.ok(err instanceof FerryError && err.code === "VALIDATION_FAILED");
        return err.details["field"];
      }
      assert.fail("expected VALIDATION_FAILED");
    };
    assert.equal(field(() => resolveConfig({ apiTls: "on" }, {}, "/srv")), "api-tls");
    assert.equal(field(() => resolveConfig({ apiTlsCert: "a.crt" }, {}, "/srv")), "api-tls-key");
    assert.equal(field(() => resolveConfig({ apiTls: "off", apiTlsCert: "a.crt", apiTlsKey: "a.key" }, {}, "/srv")), "api-tls");
  });
});
