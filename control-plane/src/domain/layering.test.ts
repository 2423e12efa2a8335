// The layering docs/architecture.md promises, checked on the source: domain code (every non-test file under
// domain/) imports no wire code (@ferry/proto, @grpc/grpc-js), no adapter library (fastify, pg, PGlite), and
// nothing of the control plane outside domain/ except ports/. Tests are exempt: they may wire real adapters in.
// Imports are read with TypeScript's own pre-processor, so comments and strings never count, and dynamic import()
// and `import type` do.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const DOMAIN = dirname(fileURLToPath(import.meta.url));
const FORBIDDEN_PACKAGES = [/^@ferry\/proto(\/|$)/, /^@grpc\//, /^fastify(\/|$)/, /^@fastify\//, /^pg(\/|$)/, /^pg-/, /^@electric-sql\//, /^@bufbuild\//];

function domainFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return domainFiles(p);
    return name.endsWith(".ts") && !name.endsWith(".test.ts") && !name.endsWith(".fixture.ts") ? [p] : [];
  });
}

/** Every import of `file` that breaks the layering, as "file: specifier (why)". */
function layeringViolations(file: string, text: string): string[] {
  const out: string[] = [];
  for (const { fileName: spec } of ts.preProcessFile(text, true, true).importedFiles) {
    if (spec.startsWith(".")) {
      const target = relative(DOMAIN, resolve(dirname(file), spec));
      if (target.startsWith(`..${sep}`) && !target.startsWith(`..${sep}ports${sep}`)) out.push(`${relative(DOMAIN, file)}: ${spec} (outside domain/ and ports/)`);
    } else if (FORBIDDEN_PACKAGES.some((re) => re.test(spec))) {
      out.push(`${relative(DOMAIN, file)}: ${spec} (wire or adapter package)`);
    }
  }
  return out;
}

describe("domain layering", () => {
  it("domain code imports no wire code, no adapter and nothing outside domain/ but ports/", () => {
    const files = domainFiles(DOMAIN);
    assert.ok(files.length > 20, `found only ${files.length} domain files`);
    const violations = files.flatMap((f) => layeringViolations(f, readFileSync(f, "utf8")));
    assert.deepEqual(violations, []);
  });

  it("the check catches each kind of violation (so an empty result means something)", () => {
    const f = join(DOMAIN, "fleet", "example.ts");
    const text = [
      'import { WireErrorCodes } from "@ferry/proto";',
      'import type { ServiceError } from "@grpc/grpc-js";',
      'import { sendError } from "../../adapters/http/errors.js";',
      'const m = await import("../../adapters/store/pg.js");',
      'import type { Store } from "../../ports/store.js";',
      'import { FerryError } from "../errors.js";',
      "// import { x } from \"../../adapters/grpc/wire-errors.js\";",
    ].join("\n");
    assert.deepEqual(layeringViolations(f, text), [
      "fleet/example.ts: @ferry/proto (wire or adapter package)",
      "fleet/example.ts: @grpc/grpc-js (wire or adapter package)",
      "fleet/example.ts: ../../adapters/http/errors.js (outside domain/ and ports/)",
      "fleet/example.ts: ../../adapters/store/pg.js (outside domain/ and ports/)",
    ]);
  });
});
