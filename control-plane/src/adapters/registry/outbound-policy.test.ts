// Where a registry may send Ferry (outbound-policy.ts): redirects and token realms. The "internet" registries here
// are names (registry.example.com, cdn.example.net) that an injected fetch routes to loopback fakes and an injected
// lookup resolves to documentation addresses, so the policy sees public hosts while every request stays on 127.0.0.1.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MEDIA_TYPES, startFakeRegistry, type FakeResponse, type FakeServer } from "../../../../test/helpers/registry.js";
import { FerryError } from "../../domain/errors.js";
import { OciRegistry } from "./oci-registry.js";
import { addressClass, checkOutbound } from "./outbound-policy.js";

const T = { timeout: 30_000 };
const MANIFEST = JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: { mediaType: MEDIA_TYPES.ociConfig, digest: `sha256:${"0".repeat(64)}`, size: 0 }, layers: [] });

async function refusal(p: Promise<unknown>): Promise<FerryError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof FerryError, `expected a FerryError, got ${err instanceof Error ? err.stack : String(err)}`);
    return err;
  }
  assert.fail("expected a refusal");
}

/** Public-looking names mapped onto loopback fakes; every request that went out is recorded. */
function routed(routes: Record<string, FakeServer>, opts: { internalHosts?: string[]; resolves?: Record<string, string[]> } = {}) {
  const sent: Array<{ url: string; authorization: string | null }> = [];
  const registry = new OciRegistry({
    timeoutMs: 5000,
    ...(opts.internalHosts ? { internalHosts: opts.internalHosts } : {}),
    lookup: async (host) => opts.resolves?.[host] ?? ["192.0.2.10"],
    fetch: async (input, init) => {
      const url = new URL(input instanceof Request ? input.url : input.toString());
      const headers = new Headers(init?.headers);
      sent.push({ url: url.toString(), authorization: headers.get("authorization") });
      const fake = routes[url.host];
      if (url.hostname !== "127.0.0.1" && !fake) throw new Error(`test routing: no route for ${url.host}`);
      const target = fake ? new URL(`http://${fake.host}${url.pathname}${url.search}`) : url;
      return fetch(target, init);
    },
  });
  return { registry, sent };
}

describe("address classes", () => {
  it("knows loopback, link-local and unspecified addresses in every spelling", () => {
    for (const a of ["127.0.0.1", "127.255.0.9", "::1", "[::1]", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "::ffff:7f00:1"]) assert.equal(addressClass(a), "loopback", a);
    for (const a of ["169.254.169.254", "fe80::1", "[fe80::abcd]", "::ffff:169.254.169.254", "::ffff:a9fe:a9fe"]) assert.equal(addressClass(a), "link-local", a);
    for (const a of ["0.0.0.0", "::"]) assert.equal(addressClass(a), "unspecified", a);
    for (const a of ["10.0.0.1", "192.168.1.1", "93.184.216.34", "2001:db8::1", "fd00::1"]) assert.equal(addressClass(a), "public-or-private", a);
    assert.equal(addressClass("registry.example.com"), null);
  });

  it("checks the scheme, user information, literal addresses and what a name resolves to", async () => {
    const policy = { registry: "registry.example.com", insecureRegistries: [], internalHosts: [], lookup: async (h: string) => (h === "rebind.example.com" ? ["127.0.0.1"] : ["192.0.2.1"]) };
    const code = async (u: string) => (await refusal(checkOutbound(policy, new URL(u), "named"))).code;
    assert.equal(await code("http://cdn.example.net/x"), "REGISTRY_TARGET_REFUSED");
    assert.equal(await code("ftp://cdn.example.net/x"), "REGISTRY_TARGET_REFUSED");
    assert.equal(await code("https://user:pw@cdn.example.net/x"), "REGISTRY_TARGET_REFUSED");
    assert.equal(await code("https://169.254.169.254/latest/meta-data"), "REGISTRY_TARGET_REFUSED");
    assert.equal(await code("https://[::1]:7070/api"), "REGISTRY_TARGET_REFUSED");
    assert.equal(await code("https://localhost:7070/api"), "REGISTRY_TARGET_REFUSED");
    assert.equal(await code("https://rebind.example.com/x"), "REGISTRY_TARGET_REFUSED");
    await checkOutbound(policy, new URL("https://cdn.example.net/blob"), "named");
    await checkOutbound(policy, new URL("https://10.1.2.3/blob"), "named");
    await checkOutbound({ ...policy, internalHosts: ["169.254.169.254"] }, new URL("https://169.254.169.254/x"), "named");
    // A loopback registry (development, tests) may name loopback hosts, but still not link-local ones.
    await checkOutbound({ ...policy, registry: "127.0.0.1:5000" }, new URL("http://127.0.0.1:5001/token"), "named");
    await refusal(checkOutbound({ ...policy, registry: "127.0.0.1:5000" }, new URL("http://169.254.169.254/"), "named"));
  });
});

describe("redirects are checked hop by hop", () => {
  it("refuses an https registry redirecting to plain http, and sends nothing there", T, async (t) => {
    const reg = await startFakeRegistry((): FakeResponse => ({ status: 307, headers: { location: "http://cdn.example.net/manifest" } }));
    t.after(() => reg.close());
    const { registry, sent } = routed({ "registry.example.com": reg });
    const err = await refusal(registry.resolve("registry.example.com/team/web:1.0"));
    assert.equal(err.code, "REGISTRY_TARGET_REFUSED");
    assert.match(err.message, /plain http/);
    assert.ok(sent.every((s) => !s.url.includes("cdn.example.net")), JSON.stringify(sent));
  });

  it("refuses redirects to link-local and loopback addresses unless the host is allowed", T, async (t) => {
    const inside = await startFakeRegistry((): FakeResponse => ({ status: 200, headers: { "content-type": MEDIA_TYPES.ociManifest }, body: MANIFEST }));
    t.after(() => inside.close());
    for (const location of ["https://169.254.169.254/latest/meta-data/", `https://${inside.host}/v2/x`, "https://internal.example.com/v2/x"]) {
      const reg = await startFakeRegistry((): FakeResponse => ({ status: 302, headers: { location } }));
      t.after(() => reg.close());
      const { registry, sent } = routed({ "registry.example.com": reg }, { resolves: { "internal.example.com": ["fe80::1"] } });
      const err = await refusal(registry.resolve("registry.example.com/team/web:1.0"));
      assert.equal(err.code, "REGISTRY_TARGET_REFUSED", location);
      assert.equal(sent.length, 1, `only the registry was asked: ${JSON.stringify(sent)}`);
    }
    // Configured: the operator says this internal host is fine.
    const reg = await startFakeRegistry((): FakeResponse => ({ status: 302, headers: { location: `http://${inside.host}/v2/team/web/manifests/1.0` } }));
    t.after(() => reg.close());
    const { registry } = routed({ "registry.example.com": reg }, { internalHosts: [inside.host] });
    // Plain http to a loopback host passes the scheme rule (loopback is plain-http), and the host is listed.
    const image = await registry.resolve("registry.example.com/team/web:1.0");
    assert.match(image.digest, /^sha256:/);
  });

  it("drops the Authorization header when a hop leaves the origin", T, async (t) => {
    const cdn = await startFakeRegistry((): FakeResponse => ({ status: 200, headers: { "content-type": MEDIA_TYPES.ociManifest }, body: MANIFEST }));
    t.after(() => cdn.close());
    const reg = await startFakeRegistry((req): FakeResponse =>
      req.authorization ? { status: 307, headers: { location: "https://cdn.example.net/m" } } : { status: 401, headers: { "www-authenticate": 'Basic realm="r"' } },
    );
    t.after(() => reg.close());
    const { registry, sent } = routed({ "registry.example.com": reg, "cdn.example.net": cdn });
    await registry.resolve("registry.example.com/team/web:1.0", { credentials: { username: "u", password: "pw-123456" } });
    const toCdn = sent.filter((s) => s.url.includes("cdn.example.net"));
    assert.ok(toCdn.length > 0);
    assert.ok(toCdn.every((s) => s.authorization === null), JSON.stringify(toCdn));
  });

  it("never quotes the body of a redirected answer", T, async (t) => {
    const secretPage = "root:x:0:0 INTERNAL-ADMIN-PAGE";
    const target = await startFakeRegistry((): FakeResponse => ({ status: 500, body: JSON.stringify({ errors: [{ code: "LEAK", message: secretPage }] }) }));
    t.after(() => target.close());
    const plain = await startFakeRegistry((): FakeResponse => ({ status: 500, body: secretPage }));
    t.after(() => plain.close());
    for (const server of [target, plain]) {
      // A loopback registry may redirect to loopback; the answer's body still must not come back to the caller.
      const reg = await startFakeRegistry((): FakeResponse => ({ status: 302, headers: { location: `http://${server.host}/v2/x` } }));
      t.after(() => reg.close());
      const err = await refusal(new OciRegistry({ timeoutMs: 5000 }).resolve(`${reg.host}/team/web:1.0`));
      assert.equal(err.code, "REGISTRY_ERROR");
      const text = `${err.message} ${JSON.stringify(err.details)}`;
      assert.ok(!text.includes("INTERNAL-ADMIN-PAGE") && !text.includes("LEAK"), text);
      assert.match(err.message, /HTTP 500/);
    }
  });

  it("stops after a bounded number of redirects", T, async (t) => {
    const reg = await startFakeRegistry((req): FakeResponse => ({ status: 302, headers: { location: `${req.url}x` } }));
    t.after(() => reg.close());
    const err = await refusal(new OciRegistry({ timeoutMs: 5000 }).resolve(`${reg.host}/team/web:1.0`));
    assert.equal(err.code, "REGISTRY_TARGET_REFUSED");
    assert.match(err.message, /redirected more than 5 times/);
  });
});

describe("token realms are checked before credentials go there", () => {
  it("refuses a realm on a link-local or loopback address, or over plain http", T, async (t) => {
    for (const realm of ["https://169.254.169.254/token", "https://127.0.0.1:7070/token", "http://auth.example.com/token"]) {
      const reg = await startFakeRegistry((): FakeResponse => ({ status: 401, headers: { "www-authenticate": `Bearer realm="${realm}",service="svc"` } }));
      t.after(() => reg.close());
      const { registry, sent } = routed({ "registry.example.com": reg });
      const err = await refusal(registry.resolve("registry.example.com/team/web:1.0", { credentials: { username: "u", password: "secret-pw" } }));
      assert.equal(err.code, "REGISTRY_TARGET_REFUSED", realm);
      assert.ok(sent.every((s) => s.url.startsWith("https://registry.example.com/")), JSON.stringify(sent));
      assert.ok(!err.message.includes("secret-pw"));
    }
  });
});
