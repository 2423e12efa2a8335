import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { DriverError } from "../types.js";
import { parseDockerConfig } from "./config.js";

function refused(config: Record<string, unknown>, field: string, message?: RegExp): void {
  assert.throws(
    () => parseDockerConfig(config),
    (err: unknown) => {
      assert.ok(err instanceof DriverError);
      assert.equal(err.code, "INVALID_TARGET_CONFIG");
      assert.equal(err.details["field"], field, err.message);
      if (message) assert.match(err.message, message);
      return true;
    },
  );
}

describe("parseDockerConfig", () => {
  it("accepts a full config and returns it typed", () => {
    const cfg = parseDockerConfig({
      container: "shop-web",
      component: "web",
      socketPath: "/run/docker.sock",
      network: "bridge",
      command: ["httpd", "-f"],
      env: { A: "1", _B: "two" },
      ports: [{ container: 80, host: 8080, protocol: "tcp" }, { container: 53, protocol: "udp" }],
      volumes: [{ source: "/srv/data", target: "/data", readOnly: true }, { source: "cache", target: "/cache" }],
      healthCheck: { type: "http", url: "http://127.0.0.1:8080/health", timeoutSeconds: 30, intervalSeconds: 2 },
    });
    assert.equal(cfg.container, "shop-web");
    assert.deepEqual(cfg.ports?.[1], { container: 53, protocol: "udp" });
    assert.deepEqual(cfg.volumes?.[0], { source: "/srv/data", target: "/data", readOnly: true });
    assert.equal(cfg.healthCheck?.timeoutSeconds, 30);
  });

  it("accepts the minimal config", () => {
    assert.deepEqual(parseDockerConfig({ container: "web" }), { container: "web" });
  });

  it("names the field it refuses", () => {
    refused({}, "config.container", /non-empty string/);
    refused({ container: "-bad" }, "config.container", /container name/);
    refused({ container: "web.ferry-old-123" }, "config.container", /ferry-old/);
    refused({ container: "web", contianer: "x" }, "config.contianer", /unknown field/);
    refused({ container: "web", socketPath: "docker.sock" }, "config.socketPath", /absolute/);
    refused({ container: "web", command: "httpd" }, "config.command", /list of strings/);
    refused({ container: "web", command: [] }, "config.command", /empty/);
    refused({ container: "web", env: { "1X": "a" } }, "config.env.1X");
    refused({ container: "web", env: { X: 1 } }, "config.env.X", /string/);
    refused({ container: "web", ports: [{ host: 80 }] }, "config.ports[0].container", /whole number/);
    refused({ container: "web", ports: [{ container: 70000 }] }, "config.ports[0].container", /between/);
    refused({ container: "web", ports: [{ container: 80, protocol: "sctp" }] }, "config.ports[0].protocol");
    refused({ container: "web", ports: [{ container: 80, hots: 1 }] }, "config.ports[0].hots", /unknown field/);
    refused({ container: "web", volumes: [{ source: "/a:b", target: "/x" }] }, "config.volumes[0].source", /':'/);
    refused({ container: "web", volumes: [{ source: "/a", target: "x" }] }, "config.volumes[0].target", /absolute/);
    refused({ container: "web", volumes: [{ source: "/a", target: "/x", readOnly: "yes" }] }, "config.volumes[0].readOnly");
    refused({ container: "web", healthCheck: { type: "grpc" } }, "config.healthCheck.type");
    refused({ container: "web", healthCheck: { type: "http" } }, "config.healthCheck.url", /required/);
    refused({ container: "web", healthCheck: { type: "http", url: "ftp://x" } }, "config.healthCheck.url", /http/);
    refused({ container: "web", healthCheck: { type: "tcp" } }, "config.healthCheck.port", /required/);
    refused({ container: "web", healthCheck: { type: "none", timeoutSeconds: 0 } }, "config.healthCheck.timeoutSeconds");
    refused({ container: "web", healthCheck: { type: "none", interval: 1 } }, "config.healthCheck.interval", /unknown field/);
  });

  it("reports a refused config as changing nothing", () => {
    try {
      parseDockerConfig({});
      assert.fail("should throw");
    } catch (err) {
      assert.ok(err instanceof DriverError);
      assert.equal(err.restored, true);
    }
  });
});
