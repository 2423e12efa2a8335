// Releases end to end: a real `ferry server`, a real OCI registry (Debian's docker-registry) on loopback, the real
// `ferry` CLI. Tags resolve to digests once; a moved tag does not change an existing release; failures leave nothing.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { TestControlPlane } from "../helpers/control-plane.js";
import { pushImage, pushIndex, registrySkipReason, startRegistry, type TestRegistry } from "../helpers/registry.js";

const skip = registrySkipReason();
if (skip) console.warn(`\n*** ${skip} ***\n`);

interface Release {
  id: string;
  name: string;
  version: string;
  pins: Array<{ component: string; digest: string; image: string; sourceTag: string | null; platforms: unknown[] }>;
}

describe("releases against a real registry", { skip }, () => {
  let cp: TestControlPlane;
  let reg: TestRegistry;
  let basic: TestRegistry;
  const scratch = mkdtempSync(join(tmpdir(), "ferry-releases-"));

  before(async () => {
    [reg, basic] = await Promise.all([startRegistry(), startRegistry({ auth: "basic" })]);
    const user = basic.users[0] as { username: string; password: string };
    const creds = join(scratch, "registry-credentials.json");
    writeFileSync(creds, JSON.stringify({ "private-pull": { username: user.username, password: user.password } }), { mode: 0o600 });
    cp = await TestControlPlane.start({ extraArgs: ["--registry-credentials", creds, "--registry-timeout", "3s"] });
    for (const [name, repo] of [["web", `${reg.host}/shop/web`], ["api", `${reg.host}/shop/api`], ["secret", `${basic.host}/shop/secret`]] as const) {
      const r = await cp.cli(["component", "create", name, "--repository", repo, ...(name === "secret" ? ["--credentials", "private-pull"] : [])]);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(async () => {
    await cp?.stop();
    await reg?.stop();
    await basic?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("cuts a release from tags (single-arch and multi-arch) and pins digests", async () => {
    const web = await pushImage(reg, "shop/web", "1.0");
    const api = await pushIndex(reg, "shop/api", "1.0");
    const notes = join(scratch, "notes.md");
    writeFileSync(notes, "# shop 1.0\n- first release\n");
    const r = await cp.cli(["release", "create", "shop@1.0", "--component", "web=:1.0", "--component", `api=${reg.host}/shop/api:1.0`, "--notes", notes, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const rel = JSON.parse(r.stdout) as Release;
    const pin = (c: string) => rel.pins.find((p) => p.component === c);
    assert.equal(pin("web")?.digest, web.digest);
    assert.equal(pin("web")?.image, `${reg.host}/shop/web@${web.digest}`);
    assert.equal(pin("web")?.sourceTag, "1.0");
    assert.equal(pin("api")?.digest, api.digest);
    assert.equal(pin("api")?.platforms.length, 2);
    const shown = await cp.cli(["release", "show", "shop@1.0"]);
    assert.match(shown.stdout, new RegExp(`web\\s+${reg.host}/shop/web@${web.digest}`));
    assert.match(shown.stdout, /first release/);
  });

  it("keeps an existing release's digest when the tag moves, and pins the new digest in a new release", async () => {
    const before1 = (await cp.api<Release>("GET", "/api/v1/releases/shop@1.0")).body;
    const moved = await pushImage(reg, "shop/web", "1.0");
    const after1 = (await cp.api<Release>("GET", "/api/v1/releases/shop@1.0")).body;
    assert.deepEqual(after1.pins, before1.pins);
    const r = await cp.api<Release>("POST", "/api/v1/releases", { name: "shop", version: "1.0.1", components: { web: ":1.0" } });
    assert.equal(r.status, 201);
    assert.equal(r.body.pins[0]?.digest, moved.digest);
    assert.notEqual(moved.digest, before1.pins.find((p) => p.component === "web")?.digest);
  });

  it("resolves by digest, and through a basic-auth registry with credentials from the secret store", async () => {
    const img = await pushImage(reg, "shop/web", null);
    const byDigest = await cp.api<Release>("POST", "/api/v1/releases", { name: "shop", version: "1.0.2", components: { web: `@${img.digest}` } });
    assert.equal(byDigest.status, 201, JSON.stringify(byDigest.body));
    assert.equal(byDigest.body.pins[0]?.sourceTag, null);
    const secret = await pushImage(basic, "shop/secret", "7");
    const priv = await cp.api<Release>("POST", "/api/v1/releases", { name: "vault", version: "7", components: { secret: ":7" } });
    assert.equal(priv.status, 201, JSON.stringify(priv.body));
    assert.equal(priv.body.pins[0]?.digest, secret.digest);
    assert.ok(!cp.proc.stdout.includes((basic.users[0] as { password: string }).password), "registry password not logged");
  });

  it("refuses bad releases with stable codes and writes nothing", async () => {
    const count = async () => (await cp.api<{ releases: unknown[] }>("GET", "/api/v1/releases?limit=500")).body.releases.length;
    const n = await count();
    const cases: Array<[Record<string, unknown>, number, string]> = [
      [{ name: "shop", version: "2.0", components: { web: ":no-such-tag" } }, 422, "TAG_NOT_FOUND"],
      [{ name: "shop", version: "2.0", components: { web: `@sha256:${"0".repeat(64)}` } }, 422, "DIGEST_NOT_FOUND"],
      [{ name: "shop", version: "2.0", components: { web: "@sha256:abc" } }, 400, "INVALID_DIGEST"],
      [{ name: "shop", version: "2.0", components: { nope: ":1.0" } }, 422, "UNKNOWN_COMPONENT"],
      [{ name: "shop", version: "1.0", components: { web: ":1.0" } }, 409, "RELEASE_EXISTS"],
      [{ name: "shop", version: "2.0", components: { web: ":1.0", api: ":missing" } }, 422, "TAG_NOT_FOUND"],
      [{ name: "shop", version: "2.0", components: { web: ":1.0" }, extra: true }, 400, "VALIDATION_FAILED"],
    ];
    for (const [body, status, errCode] of cases) {
      const r = await cp.api<{ error: { code: string; message: string } }>("POST", "/api/v1/releases", body);
      assert.equal(r.status, status, `${JSON.stringify(body)} -> ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, errCode);
    }
    assert.equal(await count(), n);
  });

  it("reports a registry that is down as REGISTRY_UNREACHABLE and creates nothing", async () => {
    const gone = await startRegistry();
    const c = await cp.cli(["component", "create", "flaky", "--repository", `${gone.host}/x/flaky`]);
    assert.equal(c.code, 0, c.stderr);
    await pushImage(gone, "x/flaky", "1");
    await gone.stop();
    const r = await cp.cli(["release", "create", "flaky@1", "--component", "flaky=:1"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /REGISTRY_UNREACHABLE/);
    const missing = await cp.api("GET", "/api/v1/releases/flaky@1");
    assert.equal(missing.status, 404);
  });

  it("honours Idempotency-Key: a retried create returns the first result; a different body is refused", async () => {
    await pushImage(reg, "shop/api", "3.0");
    const post = (body: unknown) =>
      fetch(`${cp.runtime.api}/api/v1/releases`, {
        method: "POST",
        headers: { authorization: `Bearer ${cp.adminToken}`, "content-type": "application/json", "idempotency-key": "ci-run-42" },
        body: JSON.stringify(body),
      });
    const body = { name: "api", version: "3.0", components: { api: ":3.0" } };
    const first = await post(body);
    assert.equal(first.status, 201);
    const again = await post(body);
    assert.equal(again.status, 201);
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    assert.deepEqual(await again.json(), await first.json());
    const other = await post({ ...body, version: "3.1" });
    assert.equal(other.status, 422);
    assert.equal(((await other.json()) as { error: { code: string } }).error.code, "IDEMPOTENCY_KEY_REUSED");
  });

  it("lists with filters and keyset pagination", async () => {
    const all: Release[] = [];
    let cursor: string | null = null;
    do {
      const q: string = `/api/v1/releases?name=shop&limit=2${cursor ? `&cursor=${cursor}` : ""}`;
      const page: { releases: Release[]; nextCursor: string | null } = (await cp.api<{ releases: Release[]; nextCursor: string | null }>("GET", q)).body;
      all.push(...page.releases);
      cursor = page.nextCursor;
    } while (cursor);
    assert.deepEqual(all.map((r) => r.version), ["1.0.2", "1.0.1", "1.0"]);
    const byComponent = await cp.api<{ releases: Release[] }>("GET", "/api/v1/releases?component=secret");
    assert.deepEqual(byComponent.body.releases.map((r) => `${r.name}@${r.version}`), ["vault@7"]);
    const bad = await cp.api<{ error: { code: string } }>("GET", "/api/v1/releases?cursor=garbage");
    assert.equal(bad.body.error.code, "VALIDATION_FAILED");
  });

  it("enforces roles: a viewer reads, a release manager cuts releases, neither manages the estate", async () => {
    const mk = async (subject: string, role: string) => {
      const r = await cp.cli(["token", "create", "--subject", subject, "--role", role, "--json"]);
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { secret: string }).secret;
    };
    const viewer = await mk("vera", "viewer");
    const rm = await mk("rita", "release-manager");
    assert.equal((await cp.api("GET", "/api/v1/releases", undefined, viewer)).status, 200);
    const denied = await cp.api<{ error: { code: string; message: string } }>("POST", "/api/v1/releases", { name: "x", version: "1", components: { web: ":1.0" } }, viewer);
    assert.equal(denied.status, 403);
    assert.equal(denied.body.error.code, "FORBIDDEN");
    assert.match(denied.body.error.message, /release-manager/);
    const cut = await cp.api<Release & { createdBy: string }>("POST", "/api/v1/releases", { name: "rita-cut", version: "1", components: { web: ":1.0" } }, rm);
    assert.equal(cut.status, 201);
    assert.equal(cut.body.createdBy, "rita");
    const envDenied = await cp.api<{ error: { code: string } }>("POST", "/api/v1/environments", { name: "qa" }, rm);
    assert.equal(envDenied.body.error.code, "FORBIDDEN");
    const tokens = await cp.cli(["token", "list", "--api", "--json"]);
    const rita = (JSON.parse(tokens.stdout) as Array<{ id: string; subject: string }>).find((t) => t.subject === "rita");
    assert.ok(rita);
    assert.equal((await cp.cli(["token", "revoke", rita.id])).code, 0);
    const after = await cp.api<{ error: { code: string } }>("GET", "/api/v1/releases", undefined, rm);
    assert.equal(after.status, 401);
  });
});
