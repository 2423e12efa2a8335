import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { FerryError } from "../../domain/errors.js";
import { COMPONENT_SEPARATOR, canonicalRepository, formatReference, parseDigest, parseReference, parseRepository } from "./reference.js";

const D = `sha256:${"a1".repeat(32)}`;

function refusal(fn: () => unknown): FerryError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof FerryError, `expected a FerryError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected a refusal");
}

describe("parseReference", () => {
  it("reads registry host[:port], repository, tag and digest", () => {
    assert.deepEqual(parseReference("127.0.0.1:5000/team/web:1.0"), { registry: "127.0.0.1:5000", repository: "team/web", tag: "1.0", digest: null });
    assert.deepEqual(parseReference(`ghcr.io/acme/api@${D}`), { registry: "ghcr.io", repository: "acme/api", tag: null, digest: D });
    assert.deepEqual(parseReference(`localhost/app:v2@${D}`), { registry: "localhost", repository: "app", tag: "v2", digest: D });
    assert.deepEqual(parseReference("[::1]:5000/a/b/c:x"), { registry: "[::1]:5000", repository: "a/b/c", tag: "x", digest: null });
    assert.deepEqual(parseReference("Registry.Example.COM:443/x:y").registry, "registry.example.com:443");
  });

  it("puts names without a registry on Docker Hub, single components under library/", () => {
    assert.deepEqual(parseReference("nginx:1.27"), { registry: "registry-1.docker.io", repository: "library/nginx", tag: "1.27", digest: null });
    assert.deepEqual(parseReference("grafana/grafana:11.0.0").repository, "grafana/grafana");
    assert.equal(parseReference("docker.io/nginx:1").repository, "library/nginx");
    assert.equal(parseReference("index.docker.io/library/nginx:1").registry, "registry-1.docker.io");
    // "team" has no "." or ":" and is not localhost: a Docker Hub namespace, not a registry.
    assert.deepEqual(parseReference("team/web:1").registry, "registry-1.docker.io");
  });

  it("accepts the separators Docker allows inside path components", () => {
    for (const repo of ["a.b", "a_b", "a__b", "a-b", "a---b", "a1/b2.c3_d4__e5-f6"]) {
      assert.equal(parseReference(`r.io/${repo}:t`).repository, repo);
    }
  });

  it("refuses malformed repositories, naming the part", () => {
    const cases: Array<[string, RegExp]> = [
      ["r.io/Team/web:1", /component "Team" must be lowercase/],
      ["r.io/team//web:1", /empty component/],
      ["r.io/team/web/:1", /empty component/],
      ["r.io/-web:1", /component "-web"/],
      ["r.io/web.:1", /component "web\."/],
      ["r.io/a___b:1", /component "a___b"/],
      ["r.io/:1", /repository path is empty/],
    ];
    for (const [input, message] of cases) {
      const err = refusal(() => parseReference(input));
      assert.equal(err.code, "INVALID_REFERENCE", input);
      assert.match(err.message, message, input);
      assert.equal(err.details["part"], "repository", input);
    }
  });

  it("refuses malformed tags and registries", () => {
    const tagCases = ["r.io/web:", "r.io/web:-x", "r.io/web:.x", `r.io/web:${"t".repeat(129)}`, "r.io/web:a+b"];
    for (const input of tagCases) {
      const err = refusal(() => parseReference(input));
      assert.equal(err.code, "INVALID_REFERENCE", input);
      assert.equal(err.details["part"], "tag", input);
    }
    assert.equal(parseReference(`r.io/web:${"t".repeat(128)}`).tag?.length, 128);
    for (const input of ["bad_host.io/web:1", "-x.io/web:1", "r.io:99999/web:1", "r.io:/web:1"]) {
      const err = refusal(() => parseReference(input));
      assert.equal(err.code, "INVALID_REFERENCE", input);
      assert.equal(err.details["part"], "registry", input);
    }
  });

  it("refuses a reference without tag or digest instead of assuming :latest", () => {
    const err = refusal(() => parseReference("127.0.0.1:5000/team/web"));
    assert.equal(err.code, "INVALID_REFERENCE");
    assert.match(err.message, /neither a tag nor a digest.*does not assume :latest/);
  });

  it("refuses whitespace, schemes, empty input and oversized names", () => {
    for (const input of ["", " r.io/web:1", "r.io/web:1 ", "https://r.io/web:1", `r.io/${"a".repeat(300)}:1`, "r.io/a@b@c"]) {
      assert.equal(refusal(() => parseReference(input)).code, "INVALID_REFERENCE", input);
    }
  });

  it("answers INVALID_DIGEST for a malformed digest, saying what is wrong", () => {
    const cases: Array<[string, RegExp]> = [
      ["r.io/web@sha256:abc", /has 3 hex characters; sha256 has 64/],
      [`r.io/web@sha256:${"A1".repeat(32)}`, /must be lowercase/],
      [`r.io/web@sha512:${"a".repeat(128)}`, /"sha512" is not supported/],
      [`r.io/web@${"a".repeat(64)}`, /no algorithm/],
      [`r.io/web@sha256:${"g".repeat(64)}`, /not hex/],
      ["r.io/web:1@", /no algorithm/],
    ];
    for (const [input, message] of cases) {
      const err = refusal(() => parseReference(input));
      assert.equal(err.code, "INVALID_DIGEST", input);
      assert.match(err.message, message, input);
    }
    assert.equal(parseDigest(D), D);
    assert.equal(refusal(() => parseDigest("sha256:")).code, "INVALID_DIGEST");
  });

  it("formats the canonical forms", () => {
    assert.equal(formatReference(parseReference(`docker.io/nginx:1@${D}`)), `registry-1.docker.io/library/nginx:1@${D}`);
    assert.equal(canonicalRepository(parseReference("127.0.0.1:5000/team/web:1")), "127.0.0.1:5000/team/web");
  });
});

describe("parseRepository", () => {
  it("reads a repository and refuses tags and digests", () => {
    assert.deepEqual(parseRepository("ghcr.io/acme/api"), { registry: "ghcr.io", repository: "acme/api" });
    assert.deepEqual(parseRepository("127.0.0.1:5000/web"), { registry: "127.0.0.1:5000", repository: "web" });
    assert.equal(refusal(() => parseRepository("ghcr.io/acme/api:1")).code, "INVALID_REFERENCE");
    assert.equal(refusal(() => parseRepository(`ghcr.io/acme/api@${D}`)).code, "INVALID_REFERENCE");
  });
});

describe("path components are matched in linear time", () => {
  // Docker's own spelling of the grammar, exponential on "aaaa…!" — used here only on inputs of at most 6 characters.
  const DOCKER_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*$/;

  it("every separator consumes at least one character that a name run cannot (no empty separator, no overlap)", () => {
    const separator = new RegExp(`^(?:${COMPONENT_SEPARATOR})`);
    assert.equal(separator.test(""), false, "a separator that matches nothing lets (sep alnum+)* split a run in exponentially many ways");
    for (const c of "abcdefghijklmnopqrstuvwxyz0123456789") assert.equal(separator.test(c), false, c);
  });

  it("accepts exactly the names Docker's grammar accepts", () => {
    const alphabet = ["a", "1", ".", "_", "-", "A"];
    let compared = 0;
    const visit = (prefix: string) => {
      if (prefix.length > 0) {
        const ours = (() => {
          try {
            parseRepository(`registry.example.com/${prefix}`);
            return true;
          } catch {
            return false;
          }
        })();
        assert.equal(ours, DOCKER_COMPONENT.test(prefix), JSON.stringify(prefix));
        compared++;
      }
      if (prefix.length < 6) for (const c of alphabet) visit(prefix + c);
    };
    visit("");
    assert.equal(compared, 55986);
  });

  it("refuses pathological names (Docker's spelling backtracks 2^240 times on them)", () => {
    // In a child process: a regression would block its event loop for hours, which no in-process test timeout can
    // interrupt. The generous kill timeout only turns such a hang into a failure; nothing here measures speed.
    const inputs = [`r.io/${"a".repeat(240)}!:1`, `${"a1".repeat(120)}-!:1`, `r.io/${"a-".repeat(120)}_:1`];
    const script = `import { parseReference } from ${JSON.stringify(new URL("./reference.ts", import.meta.url).href)};
      for (const input of ${JSON.stringify(inputs)}) { try { parseReference(input); process.exit(2); } catch (e) { if (e.code !== "INVALID_REFERENCE") process.exit(3); } }`;
    const r = spawnSync(process.execPath, ["--conditions=ferry-source", "--import", "tsx", "--input-type=module", "-e", script], { timeout: 60_000, encoding: "utf8" });
    assert.equal(r.signal, null, "parsing a pathological reference did not finish");
    assert.equal(r.status, 0, r.stderr);
  });
});
