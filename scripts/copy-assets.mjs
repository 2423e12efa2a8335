#!/usr/bin/env node
// Copies the non-TypeScript files a package needs at run time (SQL migrations, dashboard assets) from src to dist.
import { cpSync, readdirSync, statSync, mkdirSync } from "node:fs";
import { join, dirname } from "node:path";

const [src, dist] = process.argv.slice(2);
const EXT = /\.(sql|html|css|js|json)$/;
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (EXT.test(name)) {
      const out = join(dist, p.slice(src.length));
      mkdirSync(dirname(out), { recursive: true });
      cpSync(p, out);
    }
  }
}
walk(src);
