// Walks every route the server registers (the list comes from fastify, not from this file) with hostile input — a
// NUL byte in every path parameter, query parameter and body string, integers past what the database columns hold,
// JSON nested far too deep, "__proto__" keys, wrong types and wrong media types — on PGlite and on PostgreSQL. No
// answer may be a 500, and every refusal must have the API's error shape with a catalogued code whose HTTP status
// is the one the HTTP adapter maps it to.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RouteOptions } from "fastify";
import { ERROR_CATALOGUE, type ErrorCode } from "../../domain/error-catalogue.js";
import { testBackends } from "../store/test-backends.js";
import { httpStatusOf } from "./error-status.js";
import { MAX_JSON_DEPTH } from "./input-rules.js";
import { registeredRoutes } from "./route-table.js";
import { startTestHttpServer, type TestHttpServer } from "./test-server.js";

interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  items?: Schema;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
}

interface Probe {
  what: string;
  method: string;
  url: string;
  payload?: string;
  contentType?: string;
}

const NUL = "a\u0000b";
const BIG_INTEGERS = [2 ** 31, 2 ** 63, 1e20, -1, 1.5];

const typeOf = (s: Schema): string | undefined => (Array.isArray(s.type) ? s.type[0] : s.type);

/** A value for `schema` in which every string is `str` and every integer is `int`; free-form objects get one entry. */
function sample(schema: Schema, str: string, int: number): unknown {
  switch (typeOf(schema)) {
    case "string":
      return str;
    case "integer":
    case "number":
      return int;
    case "boolean":
      return true;
    case "array":
      return [sample(schema.items ?? {}, str, int)];
    case "object":
    case undefined: {
      if (!schema.properties) {
        const extra = typeof schema.additionalProperties === "object" ? schema.additionalProperties : { type: "string" };
        return { k: sample(extra, str, int) };
      }
      return Object.fromEntries(Object.entries(schema.properties).map(([k, v]) => [k, sample(v, str, int)]));
    }
    default:
      return null;
  }
}

function pathWith(url: string, value: (name: string) => string): string {
  return url.replace(/:([A-Za-z]+)/g, (_m, name: string) => value(name));
}

function probes(route: RouteOptions): Probe[] {
  const methods = (Array.isArray(route.method) ? route.method : [route.method]).filter((m) => m !== "HEAD");
  const schema = (route.schema ?? {}) as { params?: Schema; querystring?: Schema; body?: Schema };
  const params = route.url.match(/:([A-Za-z]+)/g)?.map((p) => p.slice(1)) ?? [];
  const plain = pathWith(route.url, () => "x1");
  const out: Probe[] = [];
  for (const method of methods) {
    for (const p of params) out.push({ what: `NUL in path parameter ${p}`, method, url: pathWith(route.url, (n) => (n === p ? "a%00b" : "x1")) });
    out.push({ what: "bad percent-encoding in the path", method, url: `${plain}${params.length ? "%zz" : "/%zz"}` });
    for (const [q, s] of Object.entries(schema.querystring?.properties ?? {})) {
      out.push({ what: `NUL in query parameter ${q}`, method, url: `${plain}?${q}=a%00b` });
      if (typeOf(s) === "integer") {
        for (const n of ["2147483648", "9223372036854775808", "99999999999999999999999", "-1", "1.5", "NaN"]) {
          out.push({ what: `${q}=${n}`, method, url: `${plain}?${q}=${n}` });
        }
      }
    }
    out.push({ what: "NUL in an unknown query parameter", method, url: `${plain}?a%00b=1` });
    const body = schema.body;
    const json = (what: string, v: unknown) => out.push({ what, method, url: plain, payload: JSON.stringify(v), contentType: "application/json" });
    if (body) {
      json("NUL in every body string", sample(body, NUL, 1));
      for (const n of BIG_INTEGERS) json(`every body integer ${n}`, sample(body, "x1", n));
      json("numbers for every body string", sample(body, 123 as unknown as string, 1));
      out.push({ what: "NUL in a free-form key", method, url: plain, payload: JSON.stringify(sample(body, "x1", 1)).replace(/"k":/g, '"a\\u0000b":'), contentType: "application/json" });
      out.push({ what: "__proto__ key", method, url: plain, payload: '{"__proto__": {"polluted": true}}', contentType: "application/json" });
      out.push({ what: "constructor key", method, url: plain, payload: '{"constructor": {"prototype": {}}}', contentType: "application/json" });
      out.push({ what: "text/plain body", method, url: plain, payload: "hello", contentType: "text/plain" });
      out.push({ what: "invalid JSON", method, url: plain, payload: "{nope", contentType: "application/json" });
    }
    // Deep nesting, both as the whole body and inside every free-form object the body has.
    const deep = (n: number) => `${'{"k":'.repeat(n)}1${"}".repeat(n)}`;
    out.push({ what: "JSON nested 100000 deep", method, url: plain, payload: `${"[".repeat(100_000)}${"]".repeat(100_000)}`, contentType: "application/json" });
    if (body) {
      const shallow = JSON.stringify(sample(body, "x1", 1));
      out.push({ what: `free-form objects nested ${MAX_JSON_DEPTH * 4} deep`, method, url: plain, payload: shallow.replace(/\{"k":"x1"\}/g, deep(MAX_JSON_DEPTH * 4)), contentType: "application/json" });
    }
  }
  return out;
}

function assertFerryShaped(p: Probe, res: { statusCode: number; body: string; headers: Record<string, unknown> }): void {
  const label = `${p.method} ${p.url.slice(0, 120)} (${p.what}) -> ${res.statusCode} ${res.body.slice(0, 300)}`;
  assert.ok(res.statusCode < 500, label);
  if (res.statusCode < 400) return;
  const body = JSON.parse(res.body) as { error?: { code?: string; message?: string }; requestId?: string };
  assert.equal(typeof body.requestId, "string", label);
  const code = body.error?.code;
  assert.ok(typeof code === "string" && Object.hasOwn(ERROR_CATALOGUE, code), label);
  assert.equal(res.statusCode, httpStatusOf(code as ErrorCode), label);
  assert.ok(typeof body.error?.message === "string" && body.error.message.length > 0, label);
  assert.doesNotMatch(body.error.message, /must be equal to one of the allowed values|querystring\.|must NOT have|must match pattern/, label);
}

async function walk(app: TestHttpServer, token: string): Promise<number> {
  const routes = registeredRoutes(app);
  assert.ok(routes.length > 60, `expected every route, got ${routes.length}`);
  let n = 0;
  for (const route of routes) {
    for (const p of probes(route)) {
      const headers: Record<string, string> = { authorization: `Bearer ${token}` };
      if (p.contentType) headers["content-type"] = p.contentType;
      const res = await app.inject({ method: p.method as "GET", url: p.url, headers, ...(p.payload !== undefined ? { payload: p.payload } : {}) });
      assertFerryShaped(p, res);
      n++;
    }
  }
  return n;
}

/** Every number without both bounds and every string without a length bound, as "route part.field" lines. */
function unbounded(route: RouteOptions): string[] {
  const out: string[] = [];
  const visit = (s: Schema & { maxLength?: number; pattern?: string }, where: string): void => {
    const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
    if ((types.includes("integer") || types.includes("number")) && (s.minimum === undefined || s.maximum === undefined)) out.push(where);
    // A pattern anchored at both ends with bounded repetition bounds the length too (a digest, a serial).
    const boundedPattern = typeof s.pattern === "string" && /^\^[^*+]*\$$/.test(s.pattern);
    if (types.includes("string") && s.maxLength === undefined && !s.enum && !boundedPattern) out.push(where);
    for (const [k, v] of Object.entries(s.properties ?? {})) visit(v, `${where}.${k}`);
    if (typeof s.additionalProperties === "object") visit(s.additionalProperties, `${where}.*`);
    if (s.items) visit(s.items, `${where}[]`);
  };
  const schema = (route.schema ?? {}) as Record<string, Schema | undefined>;
  for (const part of ["params", "querystring", "body"]) {
    const s = schema[part];
    if (s) visit(s, `${String(route.method)} ${route.url} ${part}`);
  }
  return out;
}

describe("route schemas", () => {
  it("bound every number and every string the API takes", async (t) => {
    const store = await testBackends()[0]!.open(t);
    const { app } = await startTestHttpServer(t, store);
    assert.deepEqual(registeredRoutes(app).flatMap(unbounded), []);
  });
});

for (const b of testBackends()) {
  describe(`hostile input on every route (${b.name})`, () => {
    it("never answers 500, and every refusal has the API's shape and a catalogued code", async (t) => {
      const store = await b.open(t);
      const { app, adminToken } = await startTestHttpServer(t, store);
      // Real rows, so that routes which look something up get past "not found" and reach their writes.
      const post = (url: string, payload: unknown) => app.inject({ method: "POST", url, headers: { authorization: `Bearer ${adminToken}` }, payload: payload as object });
      assert.equal((await post("/api/v1/environments", { name: "x1" })).statusCode, 201);
      assert.equal((await post("/api/v1/components", { name: "x1", repository: "127.0.0.1:5000/x1" })).statusCode, 201);
      const n = await walk(app, adminToken);
      assert.ok(n > 500, `walked ${n} requests`);
    });

    it("refuses each kind of hostile input with the code and message a person can act on", async (t) => {
      const store = await b.open(t);
      const { app, adminToken } = await startTestHttpServer(t, store);
      const send = async (method: string, url: string, payload?: string, contentType = "application/json") => {
        const res = await app.inject({ method: method as "POST", url, headers: { authorization: `Bearer ${adminToken}`, ...(payload !== undefined ? { "content-type": contentType } : {}) }, ...(payload !== undefined ? { payload } : {}) });
        return { status: res.statusCode, body: JSON.parse(res.body || "null") as { error: { code: string; message: string; details?: Record<string, unknown> } } };
      };
      // No type coercion of bodies: a number is not a name.
      const coerced = await send("POST", "/api/v1/environments", '{"name":123}');
      assert.equal(coerced.status, 400);
      assert.equal(coerced.body.error.message, "name: must be a string");
      assert.equal((await send("GET", "/api/v1/environments/123")).status, 404, "no environment was created from the number");
      // Query integers are still read from text, within bounds.
      assert.equal((await send("GET", "/api/v1/audit?limit=2")).status, 200);
      const big = await send("PATCH", "/api/v1/environments/x", '{"position": 2147483648}');
      assert.equal(big.body.error.code, "VALIDATION_FAILED");
      assert.equal(big.body.error.message, "position: must be at most 1000000");
      // Enumerations are listed, not "must be equal to one of the allowed values".
      const state = await send("GET", "/api/v1/deployments?state=done");
      assert.equal(state.body.error.message, "state: must be one of queued, running, succeeded, failed, cancelled");
      assert.deepEqual(state.body.error.details, { field: "state", in: "query" });
      assert.equal((await send("GET", "/api/v1/deployments?stat=1")).body.error.message, 'query: unknown parameter "stat"');
      assert.equal((await send("POST", "/api/v1/environments", "{}")).body.error.message, "name: is required");
      // NUL bytes, wherever they are.
      const nulPath = await send("GET", "/api/v1/environments/a%00b");
      assert.equal(nulPath.status, 400);
      assert.equal(nulPath.body.error.message, "name: must not contain a NUL character (\\u0000)");
      const nulBody = await send("POST", "/api/v1/environments", JSON.stringify({ name: "ok", settings: { gates: [{ name: NUL }] } }));
      assert.equal(nulBody.body.error.message, "settings.gates[0].name: must not contain a NUL character (\\u0000)");
      // Depth, prototype keys, media types, URL encoding.
      const deep = await send("POST", "/api/v1/environments", `{"name":"d","settings":${'{"a":'.repeat(200)}1${"}".repeat(200)}}`);
      assert.equal(deep.body.error.code, "VALIDATION_FAILED");
      assert.match(deep.body.error.message, /nests deeper than 64 levels/);
      const proto = await send("POST", "/api/v1/environments", '{"name":"p","__proto__":{"x":1}}');
      assert.equal(proto.body.error.code, "VALIDATION_FAILED");
      assert.equal(proto.body.error.message, '__proto__: the key "__proto__" is not accepted in a request body; rename the field');
      const text = await send("POST", "/api/v1/environments", "name=x", "text/plain");
      assert.equal(text.status, 415);
      assert.equal(text.body.error.code, "UNSUPPORTED_MEDIA_TYPE");
      const malformed = await send("POST", "/api/v1/environments", '{"name":');
      assert.equal(malformed.body.error.code, "MALFORMED_JSON");
      const badUrl = await send("GET", "/api/v1/environments/%zz");
      assert.equal(badUrl.status, 400);
      assert.equal(badUrl.body.error.code, "MALFORMED_REQUEST");
      // A message names the position only when one was given.
      assert.equal((await send("POST", "/api/v1/environments", '{"name":"dup"}')).status, 201);
      assert.equal((await send("POST", "/api/v1/environments", '{"name":"dup"}')).body.error.message, "an environment named dup already exists");
    });
  });
}
