// `ferry admin-token reset`: gets admin access back, offline, for someone who holds the data directory (or the
// database URL). It opens the database directly — with PGlite that requires the server to be stopped (the data
// directory is locked to one process); with PostgreSQL the replicas may keep running. It revokes the admin tokens of
// subject "admin", creates a new one, audits it, and writes the secret to <data-dir>/admin-token (0600) only.
import type { Command } from "commander";
import { resolveConfig, type RawConfig } from "../config/config.js";
import { openStore } from "../adapters/store/index.js";
import { resetAdminToken } from "../domain/auth/admin-token.js";
import { prepareDataDir, writeAdminToken } from "../data-dir.js";
import { createLogger } from "../logging.js";

export function adminTokenCommand(program: Command, print: (json: boolean, data: unknown, human: () => string) => void): void {
  const cmd = program.command("admin-token").description("the bootstrap admin API token");
  cmd
    .command("reset")
    .description("revoke the admin tokens of subject admin and write a new one to <data-dir>/admin-token (stop a PGlite server first)")
    .option("--data-dir <dir>", "the control plane's data directory (default ./.ferry)")
    .option("--database-url <url>", "PostgreSQL server URL, when the control plane uses one")
    .option("--json", "print JSON (never the secret)")
    .action(async (o: { dataDir?: string; databaseUrl?: string; json?: boolean }) => {
      const flags: RawConfig = {};
      if (o.dataDir) flags.dataDir = o.dataDir;
      if (o.databaseUrl) flags.databaseUrl = o.databaseUrl;
      const cfg = resolveConfig(flags);
      const log = createLogger({ level: "warn", format: "auto" });
      await prepareDataDir(cfg.dataDir, log).catch((err: unknown) => {
        // An insecure old token file is exactly what a reset replaces; the directory itself must still be ours.
        if ((err as { code?: string }).code !== "DATA_DIR_INSECURE" || !/admin-token/.test((err as Error).message)) throw err;
      });
      const store = await openStore({ dataDir: cfg.dataDir, ...(cfg.databaseUrl ? { databaseUrl: cfg.databaseUrl } : {}), log });
      try {
        const r = await resetAdminToken(store, `cli:${process.env["USER"] ?? "unknown"}`);
        const file = await writeAdminToken(cfg.dataDir, r.secret);
        print(!!o.json, { id: r.id, file, revoked: r.revoked }, () =>
          `admin token reset: ${r.id} written to ${file} (mode 0600); revoked: ${r.revoked.join(", ") || "none"}`,
        );
      } finally {
        await store.close();
      }
    });
}
