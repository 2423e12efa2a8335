// `ferry store copy`: moves the control plane's data from the embedded database to a PostgreSQL server
// (docs/operations.md, "Moving to a PostgreSQL server"). Runs with the server stopped: it takes the data directory's
// lock like the server does, and refuses (STORE_LOCKED) while a server holds it.
import { outJson } from "./format.js";
import type { Command } from "commander";
import { CommanderError } from "commander";
import { resolveConfig } from "../config/config.js";
import { openStore } from "../adapters/store/open.js";
import { copyStore } from "../adapters/store/store-copy.js";

export function storeCommand(program: Command): void {
  const store = program.command("store").description("the control plane's database");
  store
    .command("copy")
    .description("copy every row from the embedded database (PGlite) in --data-dir to an empty PostgreSQL database; stop the server first")
    .requiredOption("--to <url>", "PostgreSQL URL of the new, empty database")
    .option("--data-dir <dir>", "the data directory holding pglite/ (default ./.ferry, or FERRY_DATA_DIR)")
    .option("--json", "print the copy report as JSON on stdout")
    .action(async (o: { to: string; dataDir?: string; json?: boolean }) => {
      if (!/^postgres(ql)?:\/\//.test(o.to)) throw new CommanderError(2, "ferry.usage", `--to: "${o.to}" is not a postgresql:// URL`);
      const cfg = resolveConfig(o.dataDir ? { dataDir: o.dataDir } : {});
      // Both are brought to this build's schema version first, as a server start would.
      const source = await openStore({ dataDir: cfg.dataDir });
      try {
        const target = await openStore({ databaseUrl: o.to });
        try {
          let last = "";
          const report = await copyStore(source, target, (table, rows) => {
            if (table !== last) process.stderr.write(`${last ? "\n" : ""}${table}: `);
            last = table;
            process.stderr.write(`\r${table}: ${rows} rows`);
          });
          const total = report.tables.reduce((n, t) => n + t.rows, 0);
          if (o.json) outJson({ ...report, rows: total, from: `${cfg.dataDir}/pglite` });
          process.stderr.write(
            `${last ? "\n" : ""}copied ${total} rows in ${report.tables.length} tables (${report.sequences} sequences set) from ${cfg.dataDir}/pglite.\n` +
              `Start the control plane on it with the same data directory (CA, keys, admin token):\n` +
              `  ferry server --data-dir ${cfg.dataDir} --database-url <url>\n`,
          );
        } finally {
          await target.close();
        }
      } finally {
        await source.close();
      }
    });
}
