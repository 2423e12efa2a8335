#!/usr/bin/env node
import("../dist/cli/main.js").catch((err) => {
  console.error(err);
  process.exit(1);
});
