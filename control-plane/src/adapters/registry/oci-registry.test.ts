// OciRegistry against a real registry (distribution 2.8 on 127.0.0.1, no auth), plus loopback fakes for the two
// things a real registry cannot be made to do: serve bytes that do not match its digest, and never answer.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import {
  MEDIA_TYPES,
  deleteManifest,
  pushImage,
  pushIndex,
  registrySkipReason,
  startFakeRegistry,
  startHangingServer,
  startRegistry,
  type FakeResponse,
  type TestRegistry,
} from "../../../../test/helpers/registry.js";
import { FerryError } from "../../domain/errors.js";
import { OciRegistry } from "./oci-registry.js";
import { isLoopback, usesPlainHttp } from "./transport.js";

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

const sha256 = (b: Buffer | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const ZERO = `sha256:${"0".repeat(64)}`;

describe("OciRegistry against a real registry", { skip }, () => {
  let reg: TestRegistry;
  const registry = new OciRegistry({ timeoutMs: 5000 });

  before(async () => {
    reg = await startRegistry();
  });
  after(async () => {
    await reg?.stop();
  });

  it("resolves a single-arch tag to the digest the push returned", T, async () => {
    const pushed = await pushImage(reg, "team/web", "1.0");
    const r = await registry.resolve(`${reg.host}/team/web:1.0`);
    assert.deepEqual(r, { repository: `${reg.host}/team/web`, digest: pushed.digest, mediaType: MEDIA_TYPES.ociManifest, sourceTag: "1.0", platforms: [] });
  });

  it("resolves a multi-arch tag to the index digest and lists its platforms", T, async () => {
    const pushed = await pushIndex(reg, "team/multi", "2.0");
    const r = await registry.resolve(`${reg.host}/team/multi:2.0`);
    assert.equal(r.digest, pushed.digest);
    assert.equal(r.mediaType, MEDIA_TYPES.ociIndex);
    assert.deepEqual(r.platforms, [
      { os: "linux", architecture: "amd64", digest: pushed.manifests[0]?.digest },
      { os: "linux", architecture: "arm64", variant: "v8", digest: pushed.manifests[1]?.digest },
    ]);
  });

  it("resolves Docker schema 2 manifests and manifest lists", T, async () => {
    const single = await pushImage(reg, "team/docker-single", "1", { format: "docker" });
    const list = await pushIndex(reg, "team/docker-list", "1", { format: "docker" });
    const a = await registry.resolve(`${reg.host}/team/docker-single:1`);
    const b = await registry.resolve(`${reg.host}/team/docker-list:1`);
    assert.deepEqual([a.digest, a.mediaType], [single.digest, MEDIA_TYPES.dockerManifest]);
    assert.deepEqual([b.digest, b.mediaType, b.platforms.length], [list.digest, MEDIA_TYPES.dockerList, 2]);
  });

  it("resolves by digest (sourceTag null), also with a tag, where the digest wins", T, async () => {
    const pushed = await pushImage(reg, "team/bydigest", "1.0");
    const other = await pushImage(reg, "team/bydigest", "other");
    const r = await registry.resolve(`${reg.host}/team/bydigest@${pushed.digest}`);
    assert.deepEqual([r.digest, r.sourceTag], [pushed.digest, null]);
    // An index's platform manifest resolves by digest too.
    const idx = await pushIndex(reg, "team/bydigest", "multi");
    const platformDigest = idx.manifests[1]?.digest ?? "";
    assert.equal((await registry.resolve(`${reg.host}/team/bydigest@${platformDigest}`)).mediaType, MEDIA_TYPES.ociManifest);
    const both = await registry.resolve(`${reg.host}/team/bydigest:1.0@${other.digest}`);
    assert.deepEqual([both.digest, both.sourceTag], [other.digest, null]);
  });

  it("answers DIGEST_NOT_FOUND for an unknown digest", T, async () => {
    await pushImage(reg, "team/nodigest", "1.0");
    const err = await refusal(registry.resolve(`${reg.host}/team/nodigest@${ZERO}`));
    assert.equal(err.code, "DIGEST_NOT_FOUND");
    assert.equal(err.details["registryCode"], "MANIFEST_UNKNOWN");
    assert.match(err.message, /team\/nodigest has no manifest with digest sha256:0{64}/);
  });

  it("answers TAG_NOT_FOUND for an unknown tag", T, async () => {
    await pushImage(reg, "team/notag", "1.0");
    const err = await refusal(registry.resolve(`${reg.host}/team/notag:9.9`));
    assert.equal(err.code, "TAG_NOT_FOUND");
    assert.deepEqual([err.details["status"], err.details["registryCode"]], [404, "MANIFEST_UNKNOWN"]);
    assert.match(err.message, /team\/notag has no tag 9\.9/);
  });

  it("answers REPOSITORY_NOT_FOUND for an unknown repository (the manifest says MANIFEST_UNKNOWN, tags/list NAME_UNKNOWN)", T, async () => {
    // What distribution 2.8 itself answers: a missing repository looks like a missing tag on the manifest endpoint.
    const raw = await fetch(`${reg.url}/v2/nosuch/repo/manifests/1.0`);
    assert.equal(raw.status, 404);
    assert.equal(((await raw.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, "MANIFEST_UNKNOWN");
    const list = await fetch(`${reg.url}/v2/nosuch/repo/tags/list`);
    assert.equal(((await list.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, "NAME_UNKNOWN");

    const byTag = await refusal(registry.resolve(`${reg.host}/nosuch/repo:1.0`));
    assert.equal(byTag.code, "REPOSITORY_NOT_FOUND");
    assert.match(byTag.message, /has no repository nosuch\/repo/);
    assert.equal((await refusal(registry.resolve(`${reg.host}/nosuch/repo@${ZERO}`))).code, "REPOSITORY_NOT_FOUND");
  });

  it("follows a moved tag to the new digest; the old digest still resolves", T, async () => {
    const first = await pushImage(reg, "team/retag", "stable");
    assert.equal((await registry.resolve(`${reg.host}/team/retag:stable`)).digest, first.digest);
    const second = await pushImage(reg, "team/retag", "stable");
    assert.notEqual(second.digest, first.digest);
    assert.equal((await registry.resolve(`${reg.host}/team/retag:stable`)).digest, second.digest);
    assert.equal((await registry.resolve(`${reg.host}/team/retag@${first.digest}`)).digest, first.digest);
  });

  it("answers DIGEST_NOT_FOUND / TAG_NOT_FOUND after the manifest is deleted (the registry untags it)", T, async () => {
    const pushed = await pushImage(reg, "team/deleted", "gone");
    await pushImage(reg, "team/deleted", "kept");
    await deleteManifest(reg, "team/deleted", pushed.digest);
    assert.equal((await refusal(registry.resolve(`${reg.host}/team/deleted@${pushed.digest}`))).code, "DIGEST_NOT_FOUND");
    assert.equal((await refusal(registry.resolve(`${reg.host}/team/deleted:gone`))).code, "TAG_NOT_FOUND");
  });

  it("sends HEAD, then GET by the digest HEAD reported, asking for every supported media type", T, async () => {
    const seen: Array<{ method: string; url: string; accept: string | null }> = [];
    const spy = new OciRegistry({
      fetch: async (input, init) => {
        seen.push({ method: init?.method ?? "GET", url: urlOf(input), accept: new Headers(init?.headers).get("accept") });
        return fetch(input, init);
      },
    });
    const pushed = await pushImage(reg, "team/spy", "1.0");
    await spy.resolve(`${reg.host}/team/spy:1.0`);
    assert.deepEqual(
      seen.map((s) => `${s.method} ${s.url}`),
      [`HEAD http://${reg.host}/v2/team/spy/manifests/1.0`, `GET http://${reg.host}/v2/team/spy/manifests/${pushed.digest}`],
    );
    for (const type of [MEDIA_TYPES.ociIndex, MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerList, MEDIA_TYPES.dockerManifest]) {
      assert.ok(seen[0]?.accept?.includes(type), type);
    }
  });

  it("uses https for a non-loopback name (a TLS failure is REGISTRY_UNREACHABLE), http once it is listed as insecure", T, async () => {
    await pushImage(reg, "team/scheme", "1.0");
    const port = reg.host.split(":")[1] ?? "";
    const urls: string[] = [];
    // "registry.test" is only a name: this fetch sends it to the loopback registry, keeping the scheme chosen.
    const viaLoopback: typeof fetch = async (input, init) => {
      urls.push(urlOf(input));
      return fetch(urlOf(input).replace(`registry.test:${port}`, reg.host), init);
    };
    const secure = new OciRegistry({ fetch: viaLoopback, timeoutMs: 5000 });
    const err = await refusal(secure.resolve(`registry.test:${port}/team/scheme:1.0`));
    assert.equal(err.code, "REGISTRY_UNREACHABLE");
    assert.match(err.message, /TLS failed/);
    assert.ok(urls[0]?.startsWith(`https://registry.test:${port}/`), urls[0]);

    const insecure = new OciRegistry({ fetch: viaLoopback, insecureRegistries: ["registry.test"] });
    assert.equal((await insecure.resolve(`registry.test:${port}/team/scheme:1.0`)).repository, `registry.test:${port}/team/scheme`);
    assert.ok(urls.at(-1)?.startsWith("http://"));
  });

  it("answers REGISTRY_UNREACHABLE with host:port once the registry is stopped", T, async () => {
    const own = await startRegistry();
    try {
      const pushed = await pushImage(own, "team/down", "1.0");
      assert.equal((await registry.resolve(`${own.host}/team/down:1.0`)).digest, pushed.digest);
    } finally {
      await own.stop();
    }
    const err = await refusal(registry.resolve(`${own.host}/team/down:1.0`));
    assert.equal(err.code, "REGISTRY_UNREACHABLE");
    assert.equal(err.details["host"], own.host);
    assert.match(err.message, new RegExp(`${own.host.replace(/\./g, "\\.")} is unreachable`));
  });
});

describe("OciRegistry against loopback fakes", () => {
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: ZERO, size: 2 },
      layers: [],
    }),
  );
  const served = (headers: Record<string, string>, body: Buffer | string = manifest): FakeResponse => ({
    status: 200,
    headers: { "content-type": MEDIA_TYPES.ociManifest, ...headers },
    body,
  });

  it("answers REGISTRY_UNREACHABLE within the timeout when the registry never answers", T, async (t) => {
    const hang = await startHangingServer();
    t.after(() => hang.close());
    const started = Date.now();
    const err = await refusal(new OciRegistry({ timeoutMs: 300 }).resolve(`${hang.host}/team/web:1.0`));
    const elapsed = Date.now() - started;
    assert.equal(err.code, "REGISTRY_UNREACHABLE");
    assert.equal(err.details["reason"], "timeout");
    assert.match(err.message, new RegExp(`${hang.host.replace(/\./g, "\\.")} did not answer within 300 ms`));
    assert.ok(elapsed >= 250 && elapsed < 3000, `took ${elapsed} ms`);
  });

  it("rejects with the caller's reason when the caller aborts, not as a registry fault", T, async (t) => {
    const hang = await startHangingServer();
    t.after(() => hang.close());
    const ac = new AbortController();
    const pending = new OciRegistry({ timeoutMs: 10_000 }).resolve(`${hang.host}/team/web:1.0`, { signal: ac.signal });
    const reason = new Error("release creation cancelled");
    ac.abort(reason);
    await assert.rejects(pending, (err) => err === reason);
  });

  it("answers REGISTRY_DIGEST_MISMATCH when Docker-Content-Digest does not match the body, naming both", T, async (t) => {
    const claimed = sha256("some other manifest");
    const fake = await startFakeRegistry(() => served({ "docker-content-digest": claimed }));
    t.after(() => fake.close());
    const err = await refusal(new OciRegistry().resolve(`${fake.host}/team/web:1.0`));
    assert.equal(err.code, "REGISTRY_DIGEST_MISMATCH");
    assert.deepEqual([err.details["expected"], err.details["actual"]], [claimed, sha256(manifest)]);
    assert.match(err.message, new RegExp(`${sha256(manifest)}.*${claimed}`));
  });

  it("checks GET's Docker-Content-Digest too, and a requested digest against the bytes", T, async (t) => {
    const onGetOnly = await startFakeRegistry((r) => served(r.method === "GET" ? { "docker-content-digest": ZERO } : {}));
    t.after(() => onGetOnly.close());
    assert.equal((await refusal(new OciRegistry().resolve(`${onGetOnly.host}/team/web:1.0`))).code, "REGISTRY_DIGEST_MISMATCH");

    const noHeaders = await startFakeRegistry(() => served({}));
    t.after(() => noHeaders.close());
    const err = await refusal(new OciRegistry().resolve(`${noHeaders.host}/team/web@${ZERO}`));
    assert.equal(err.code, "REGISTRY_DIGEST_MISMATCH");
    assert.match(err.message, /the requested digest is sha256:0{64}/);
    const garbled = await startFakeRegistry(() => served({ "docker-content-digest": "not-a-digest" }));
    t.after(() => garbled.close());
    const bad = await refusal(new OciRegistry().resolve(`${garbled.host}/team/web:1.0`));
    assert.equal(bad.code, "REGISTRY_ERROR");
    assert.match(bad.message, /Docker-Content-Digest that is not a digest/);
    // Without any claim, the hash of the bytes is what gets pinned.
    assert.equal((await new OciRegistry().resolve(`${noHeaders.host}/team/web:1.0`)).digest, sha256(manifest));
  });

  it("refuses schema 1, unknown media types and a body that contradicts its Content-Type (REGISTRY_ERROR)", T, async (t) => {
    const schema1 = Buffer.from(JSON.stringify({ schemaVersion: 1, name: "team/web", tag: "1.0", fsLayers: [], history: [] }));
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [] }));
    const cases: Array<[FakeResponse, RegExp]> = [
      [{ ...served({ "docker-content-digest": sha256(schema1) }, schema1), headers: { "content-type": "application/vnd.docker.distribution.manifest.v1+prettyjws" } }, /schema 1/],
      [{ ...served({}, schema1), headers: { "content-type": "application/json" } }, /schema 1/],
      [{ ...served({}), headers: { "content-type": "application/vnd.example.unknown+json" } }, /media type application\/vnd\.example\.unknown\+json is not supported/],
      [{ ...served({}, index), headers: { "content-type": MEDIA_TYPES.ociManifest } }, /served as application\/vnd\.oci\.image\.manifest\.v1\+json but its mediaType field says application\/vnd\.oci\.image\.index\.v1\+json/],
      [served({}, "not json"), /not valid JSON/],
    ];
    for (const [response, message] of cases) {
      const fake = await startFakeRegistry(() => response);
      t.after(() => fake.close());
      const err = await refusal(new OciRegistry().resolve(`${fake.host}/team/web:1.0`));
      assert.equal(err.code, "REGISTRY_ERROR", String(message));
      assert.match(err.message, message);
    }
  });

  it("maps other statuses to REGISTRY_ERROR with the status and the registry's message", T, async (t) => {
    const fake = await startFakeRegistry(() => ({
      status: 503,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ errors: [{ code: "UNAVAILABLE", message: "storage backend is down" }] }),
    }));
    t.after(() => fake.close());
    const err = await refusal(new OciRegistry().resolve(`${fake.host}/team/web:1.0`));
    assert.equal(err.code, "REGISTRY_ERROR");
    assert.match(err.message, /answered HTTP 503 UNAVAILABLE: storage backend is down/);
    assert.deepEqual([err.details["status"], err.details["registryCode"]], [503, "UNAVAILABLE"]);
  });
});

describe("the plain-http rule", () => {
  it("is http for loopback and listed hosts, https for everything else", () => {
    for (const host of ["127.0.0.1:5000", "127.1.2.3", "localhost:5000", "LOCALHOST", "[::1]:5000"]) assert.ok(isLoopback(host), host);
    for (const host of ["128.0.0.1", "127.0.0.256", "localhost.example.com", "[::2]", "10.0.0.1:5000", "registry.test"]) assert.ok(!isLoopback(host), host);
    assert.ok(usesPlainHttp("reg.lan:5000", ["reg.lan"]));
    assert.ok(usesPlainHttp("reg.lan:5000", ["REG.LAN:5000"]));
    assert.ok(!usesPlainHttp("reg.lan:5001", ["reg.lan:5000"]));
    assert.ok(!usesPlainHttp("ghcr.io", []));
  });
});
