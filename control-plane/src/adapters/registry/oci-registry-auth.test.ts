// Registry auth against real registries: distribution 2.8 with htpasswd (Basic) and with Docker token auth, whose
// token server runs in this process (test/helpers/registry.ts). Fakes cover a token being revoked early, a realm
// over plain http, and a registry that echoes secrets into its error messages.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { MEDIA_TYPES, pushImage, registrySkipReason, startFakeRegistry, startRegistry, type FakeResponse, type TestRegistry } from "../../../../test/helpers/registry.js";
import { FerryError } from "../../domain/errors.js";
import type { RegistryCredentials } from "../../ports/registry.js";
import { OciRegistry } from "./oci-registry.js";

const T = { timeout: 30_000 };
/** The URL a fetch was called with (OciRegistry passes URL objects). */
const urlOf = (input: string | URL | Request): string => (input instanceof Request ? input.url : input.toString());
const skip = registrySkipReason();

async function refusal(p: Promise<unknown>): Promise<FerryError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof FerryError, `expected a FerryError, got ${err instanceof Error ? err.stack : String(err)}`);
    return err;
  }
  assert.fail("expected a refusal");
}

/** Asserts that nothing secret appears anywhere in an error: message, details, or the messages of its causes. */
function assertNoSecrets(err: FerryError, secrets: string[]): void {
  let text = `${err.message} ${JSON.stringify(err.details)}`;
  for (let c: unknown = err.cause, depth = 0; c instanceof Error && depth < 5; c = c.cause, depth++) text += ` ${c.message}`;
  for (const s of secrets) assert.ok(!text.includes(s), `error text contains a secret: ${text}`);
}

/** An OciRegistry whose requests are recorded as "METHOD url -> status". */
function spied(opts: ConstructorParameters<typeof OciRegistry>[0] = {}): { registry: OciRegistry; calls: string[] } {
  const calls: string[] = [];
  const registry = new OciRegistry({
    timeoutMs: 5000,
    ...opts,
    fetch: async (input, init) => {
      const res = await fetch(input, init);
      calls.push(`${init?.method ?? "GET"} ${urlOf(input)} -> ${res.status}`);
      return res;
    },
  });
  return { registry, calls };
}

describe("Basic auth (htpasswd) on a real registry", { skip }, () => {
  let reg: TestRegistry;
  let creds: RegistryCredentials;
  let digest: string;

  before(async () => {
    reg = await startRegistry({ auth: "basic" });
    creds = reg.users[0] ?? assert.fail("no user");
    digest = (await pushImage(reg, "team/web", "1.0")).digest;
  });
  after(async () => {
    await reg?.stop();
  });

  it("resolves with the credentials, then sends them without waiting for the challenge", T, async () => {
    const { registry, calls } = spied();
    assert.equal((await registry.resolve(`${reg.host}/team/web:1.0`, { credentials: creds })).digest, digest);
    assert.deepEqual(
      calls.map((c) => c.replace(/ http\S+/, "")),
      ["HEAD -> 401", "HEAD -> 200", "GET -> 200"],
    );
    calls.length = 0;
    await registry.resolve(`${reg.host}/team/web:1.0`, { credentials: creds });
    assert.deepEqual(calls.map((c) => c.replace(/ http\S+/, "")), ["HEAD -> 200", "GET -> 200"]);
  });

  it("refuses without credentials (REGISTRY_AUTH_FAILED)", T, async () => {
    const err = await refusal(new OciRegistry().resolve(`${reg.host}/team/web:1.0`));
    assert.equal(err.code, "REGISTRY_AUTH_FAILED");
    assert.match(err.message, /asks for credentials \(Basic\) and none were given/);
  });

  it("refuses wrong credentials without repeating them", T, async () => {
    const wrong = { username: creds.username, password: "wrong-password-1234" };
    const err = await refusal(new OciRegistry().resolve(`${reg.host}/team/web:1.0`, { credentials: wrong }));
    assert.equal(err.code, "REGISTRY_AUTH_FAILED");
    assert.match(err.message, /refused the credentials/);
    assertNoSecrets(err, [wrong.password, creds.password, Buffer.from(`${wrong.username}:${wrong.password}`).toString("base64")]);
  });

  it("reports a missing tag behind auth as TAG_NOT_FOUND", T, async () => {
    assert.equal((await refusal(new OciRegistry().resolve(`${reg.host}/team/web:nope`, { credentials: creds }))).code, "TAG_NOT_FOUND");
  });
});

describe("Bearer token auth on a real registry", { skip }, () => {
  let reg: TestRegistry;
  let creds: RegistryCredentials;
  let digest: string;

  before(async () => {
    reg = await startRegistry({ auth: "token" });
    creds = reg.users[0] ?? assert.fail("no user");
    digest = (await pushImage(reg, "team/web", "1.0")).digest;
    await pushImage(reg, "team/other", "1.0");
  });
  after(async () => {
    await reg?.stop();
  });

  it("fetches a token from the realm with service and scope, then reuses it", T, async () => {
    const ts = reg.tokenServer ?? assert.fail("no token server");
    const before = ts.requests.length;
    const { registry, calls } = spied();
    const r = await registry.resolve(`${reg.host}/team/web:1.0`, { credentials: creds });
    assert.deepEqual([r.digest, r.mediaType], [digest, MEDIA_TYPES.ociManifest]);
    assert.deepEqual(ts.requests.slice(before), [{ scopes: ["repository:team/web:pull"], service: ts.service, user: creds.username, status: 200 }]);
    assert.equal(calls.filter((c) => c.includes("/token?")).length, 1);

    calls.length = 0;
    assert.equal((await registry.resolve(`${reg.host}/team/web:1.0`, { credentials: creds })).digest, digest);
    assert.equal(ts.requests.length, before + 1, "the second resolve asked the realm again");
    // The cached token goes out with the first request: no 401 round trip either.
    assert.deepEqual(calls.map((c) => c.replace(/ http\S+/, "")), ["HEAD -> 200", "GET -> 200"]);
  });

  it("asks for a new token once the cached one expires", T, async () => {
    const ts = reg.tokenServer ?? assert.fail("no token server");
    let now = Date.now();
    const registry = new OciRegistry({ clock: { now: () => now } });
    const before = ts.requests.length;
    await registry.resolve(`${reg.host}/team/web:1.0`, { credentials: creds });
    await registry.resolve(`${reg.host}/team/web:1.0`, { credentials: creds });
    assert.equal(ts.requests.length, before + 1);
    now += ts.expiresIn * 1000;
    await registry.resolve(`${reg.host}/team/web:1.0`, { credentials: creds });
    assert.equal(ts.requests.length, before + 2);
  });

  it("keeps tokens apart per scope and per credentials", T, async () => {
    const ts = reg.tokenServer ?? assert.fail("no token server");
    const registry = new OciRegistry();
    await registry.resolve(`${reg.host}/team/web:1.0`, { credentials: creds });
    const before = ts.requests.length;
    await registry.resolve(`${reg.host}/team/other:1.0`, { credentials: creds });
    assert.deepEqual(ts.requests.slice(before).map((r) => r.scopes), [["repository:team/other:pull"]]);
    // A caller without credentials must not ride on the token another caller's credentials bought.
    const err = await refusal(registry.resolve(`${reg.host}/team/web:1.0`));
    assert.equal(err.code, "REGISTRY_AUTH_FAILED");
    assert.equal(ts.requests.at(-1)?.user, null);
  });

  it("refuses anonymous access the token does not grant (REGISTRY_AUTH_FAILED, insufficient_scope)", T, async () => {
    const err = await refusal(new OciRegistry().resolve(`${reg.host}/team/web:1.0`));
    assert.equal(err.code, "REGISTRY_AUTH_FAILED");
    assert.match(err.message, /refused anonymous access \(insufficient_scope\); configure credentials/);
  });

  it("refuses credentials the realm rejects, without repeating them", T, async () => {
    const wrong = { username: creds.username, password: "wrong-password-5678" };
    const err = await refusal(new OciRegistry().resolve(`${reg.host}/team/web:1.0`, { credentials: wrong }));
    assert.equal(err.code, "REGISTRY_AUTH_FAILED");
    assert.match(err.message, /token realm http:\/\/127\.0\.0\.1:\d+\/token refused the credentials/);
    assertNoSecrets(err, [wrong.password, creds.password]);
  });

  it("reports missing tags, digests and repositories through the token flow", T, async () => {
    const registry = new OciRegistry();
    const o = { credentials: creds };
    assert.equal((await refusal(registry.resolve(`${reg.host}/team/web:nope`, o))).code, "TAG_NOT_FOUND");
    assert.equal((await refusal(registry.resolve(`${reg.host}/team/web@sha256:${"1".repeat(64)}`, o))).code, "DIGEST_NOT_FOUND");
    const missing = await refusal(registry.resolve(`${reg.host}/no/such:1.0`, o));
    assert.equal(missing.code, "REPOSITORY_NOT_FOUND");
  });
});

describe("auth edge cases against loopback fakes", () => {
  it("gets a fresh token when the registry refuses a cached one before its expiry", T, async (t) => {
    let generation = 1;
    let tokenRequests = 0;
    const manifest = JSON.stringify({ schemaVersion: 2, config: { digest: `sha256:${"0".repeat(64)}`, size: 0 }, layers: [] });
    const fake = await startFakeRegistry((req): FakeResponse => {
      if (req.url.startsWith("/token")) {
        tokenRequests++;
        return { status: 200, headers: { "content-type": "application/json" }, body: JSON.stringify({ access_token: `tok-${generation}`, expires_in: 300 }) };
      }
      if (req.authorization !== `Bearer tok-${generation}`) {
        return { status: 401, headers: { "www-authenticate": `Bearer realm="http://${fake.host}/token",service="fake",scope="repository:team/web:pull"` } };
      }
      return { status: 200, headers: { "content-type": MEDIA_TYPES.ociManifest }, body: manifest };
    });
    t.after(() => fake.close());
    const registry = new OciRegistry();
    await registry.resolve(`${fake.host}/team/web:1.0`);
    assert.equal(tokenRequests, 1);
    generation = 2; // the server revokes tok-1
    await registry.resolve(`${fake.host}/team/web:1.0`);
    assert.equal(tokenRequests, 2);
  });

  it("will not send credentials to a plain-http realm on a non-loopback host", T, async (t) => {
    const fake = await startFakeRegistry(() => ({
      status: 401,
      headers: { "www-authenticate": 'Bearer realm="http://auth.example.com/token",service="svc"' },
    }));
    t.after(() => fake.close());
    const { registry, calls } = spied();
    const err = await refusal(registry.resolve(`${fake.host}/team/web:1.0`, { credentials: { username: "u", password: "secret-pw" } }));
    assert.equal(err.code, "REGISTRY_TARGET_REFUSED");
    assert.match(err.message, /token realm http:\/\/auth\.example\.com\/token.*plain http/);
    assert.ok(calls.every((c) => !c.includes("auth.example.com")), calls.join("\n"));
  });

  it("removes credentials a registry echoes into its error message", T, async (t) => {
    const password = "echoed-secret-pw";
    const fake = await startFakeRegistry((req) =>
      req.authorization
        ? { status: 500, body: JSON.stringify({ errors: [{ code: "UNKNOWN", message: `cannot handle ${req.authorization} (password ${password})` }] }) }
        : { status: 401, headers: { "www-authenticate": 'Basic realm="fake"' } },
    );
    t.after(() => fake.close());
    const err = await refusal(new OciRegistry().resolve(`${fake.host}/team/web:1.0`, { credentials: { username: "u", password } }));
    assert.equal(err.code, "REGISTRY_ERROR");
    assert.match(err.message, /cannot handle Basic \[redacted\] \(password \[redacted\]\)/);
    assertNoSecrets(err, [password, Buffer.from(`u:${password}`).toString("base64")]);
  });

  it("removes credentials a registry echoes URL-encoded, in either hex case or form-encoded", T, async (t) => {
    const password = "p@ss word+/=x";
    const basic = Buffer.from(`u:${password}`).toString("base64");
    const echoes = [encodeURIComponent(password), encodeURIComponent(password).toLowerCase(), encodeURIComponent(password).replace(/%20/g, "+"), encodeURIComponent(basic), encodeURIComponent(encodeURIComponent(password))];
    const fake = await startFakeRegistry((req) =>
      req.authorization
        ? { status: 500, body: JSON.stringify({ errors: [{ code: "UNKNOWN", message: `refused ${echoes.join(" | ")}` }] }) }
        : { status: 401, headers: { "www-authenticate": 'Basic realm="fake"' } },
    );
    t.after(() => fake.close());
    const err = await refusal(new OciRegistry().resolve(`${fake.host}/team/web:1.0`, { credentials: { username: "u", password } }));
    assert.equal(err.code, "REGISTRY_ERROR");
    assert.match(err.message, /refused \[redacted\] \| \[redacted\] \| \[redacted\] \| \[redacted\] \| \[redacted\]/);
    assertNoSecrets(err, [password, ...echoes, basic]);
  });

  it("refuses a 401 without a usable challenge, and an unparseable one", T, async (t) => {
    for (const header of [undefined, "Digest realm=x", 'Bearer realm="unterminated']) {
      const headers: Record<string, string> = header ? { "www-authenticate": header } : {};
      const fake = await startFakeRegistry(() => ({ status: 401, headers }));
      t.after(() => fake.close());
      const err = await refusal(new OciRegistry().resolve(`${fake.host}/team/web:1.0`, { credentials: { username: "u", password: "p" } }));
      assert.equal(err.code, "REGISTRY_AUTH_FAILED", String(header));
    }
  });
});
