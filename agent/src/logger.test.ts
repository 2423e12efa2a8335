import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";

const LOGGER = new URL("./logger.ts", import.meta.url).href;

/** Runs `body` in a fresh process with createLogger imported; returns its stdout. */
function run(body: string): string {
  const script = `const { createLogger } = await import(${JSON.stringify(LOGGER)});\n${body}`;
  return execFileSync(process.execPath, ["--conditions=ferry-source", "--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" } });
}

describe("createLogger", () => {
  it("pretty output: lines logged before pino-pretty has loaded come out, in order, pretty-printed", () => {
    const out = run(`const log = createLogger({ pretty: true }); log.info("first"); log.warn({ joinString: "secret" }, "second");`);
    const lines = out.split("\n").filter((l) => /first|second/.test(l));
    assert.equal(lines.length, 2, out);
    assert.match(lines[0]!, /INFO.*first/);
    assert.match(lines[1]!, /WARN.*second/);
    assert.doesNotMatch(out, /secret"/);
    assert.match(out, /\[redacted\]/);
  });

  it("JSON output does not load pino-pretty", () => {
    // pino-pretty's module is cached by its resolved path once loaded; none of its files may be in the cache.
    const out = run(`const log = createLogger({ pretty: false }); log.info("json"); await new Promise((r) => setTimeout(r, 50)); const { createRequire } = await import("node:module"); const req = createRequire(${JSON.stringify(LOGGER)}); process.stdout.write(String(Object.keys(req.cache).some((k) => k.includes("pino-pretty"))));`);
    assert.match(out, /"msg":"json"/);
    assert.match(out, /false$/);
  });
});
