// Registry credentials held outside the database: a component names credentials by a short reference ("ghcr-prod"),
// and the control plane looks the reference up here when it resolves that component's image. Releases, the audit
// log and evidence packets only ever contain the reference.
//
// Lookup order for get("ghcr-prod"):
//   1. the environment variable FERRY_REGISTRY_CREDENTIALS_GHCR_PROD = "username:password" (the reference uppercased,
//      every character other than A-Z and 0-9 replaced by "_"; the password is everything after the first ":");
//   2. the JSON credentials file, if one is configured: { "ghcr-prod": { "username": "…", "password": "…" }, … }.
// Neither holding the reference → null (callers answer REGISTRY_CREDENTIALS_NOT_FOUND).
//
// The file is refused — on every read, checked on the open file descriptor so a swap between check and read cannot
// slip through — when group or others have any permission on it (like ssh with a private key): `chmod 600`. It is
// re-read on each lookup, so rotating a password needs no restart. Errors name the variable, file and reference,
// never a username's password or the file's content (JSON.parse messages quote the input, so they are not passed on).
import { promises as fs } from "node:fs";
import type { CredentialStore, RegistryCredentials } from "../../ports/registry.js";

export type CredentialStoreErrorCode =
  /** The credentials file is accessible to group or others. */
  | "CREDENTIALS_FILE_INSECURE"
  /** The credentials file is missing, not a regular file, or cannot be read. */
  | "CREDENTIALS_FILE_UNREADABLE"
  /** The credentials file is not a JSON object of { username, password } entries. */
  | "CREDENTIALS_FILE_INVALID"
  /** A FERRY_REGISTRY_CREDENTIALS_* variable is not "username:password". */
  | "CREDENTIALS_ENV_INVALID";

/** A misconfigured secret store: an operator's problem, reported at the lookup (or at start-up through check()). */
export class CredentialStoreError extends Error {
  override readonly name = "CredentialStoreError";
  constructor(
    readonly code: CredentialStoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const CREDENTIALS_ENV_PREFIX = "FERRY_REGISTRY_CREDENTIALS_";
// A credentials file is a few entries; anything far larger is not one.
const MAX_FILE_BYTES = 1024 * 1024;

/** The environment variable that holds the credentials for a reference. */
export function credentialsEnvName(ref: string): string {
  return `${CREDENTIALS_ENV_PREFIX}${ref.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

export interface EnvAndFileCredentialStoreOptions {
  env: Readonly<Record<string, string | undefined>>;
  /** Path of the JSON credentials file; none when absent. */
  file?: string | null;
}

function errnoCode(err: unknown): string | undefined {
  return err instanceof Error && "code" in err && typeof err.code === "string" ? err.code : undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export class EnvAndFileCredentialStore implements CredentialStore {
  readonly #env: Readonly<Record<string, string | undefined>>;
  readonly #file: string | null;

  constructor(opts: EnvAndFileCredentialStoreOptions) {
    this.#env = opts.env;
    this.#file = opts.file ?? null;
  }

  async get(ref: string): Promise<RegistryCredentials | null> {
    if (typeof ref !== "string" || ref === "") return null;
    const name = credentialsEnvName(ref);
    const raw = this.#env[name];
    if (raw !== undefined && raw !== "") {
      const colon = raw.indexOf(":");
      if (colon <= 0) {
        throw new CredentialStoreError("CREDENTIALS_ENV_INVALID", `${name} must be "username:password" (a non-empty username, then ":", then the password)`);
      }
      return { username: raw.slice(0, colon), password: raw.slice(colon + 1) };
    }
    if (this.#file === null) return null;
    const doc = await this.#readFile();
    if (!Object.hasOwn(doc, ref)) return null;
    return this.#entry(doc, ref);
  }

  /** Reads and validates the whole file (when one is configured), so a composition root can fail at start-up. */
  async check(): Promise<void> {
    if (this.#file === null) return;
    const doc = await this.#readFile();
    for (const ref of Object.keys(doc)) this.#entry(doc, ref);
  }

  #entry(doc: Record<string, unknown>, ref: string): RegistryCredentials {
    const e = doc[ref];
    if (!isRecord(e) || typeof e["username"] !== "string" || e["username"] === "" || typeof e["password"] !== "string") {
      throw new CredentialStoreError(
        "CREDENTIALS_FILE_INVALID",
        `entry ${JSON.stringify(ref)} in ${this.#file ?? ""} must be {"username": "<non-empty>", "password": "<string>"}`,
      );
    }
    return { username: e["username"], password: e["password"] };
  }

  async #readFile(): Promise<Record<string, unknown>> {
    const file = this.#file ?? "";
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(file, "r");
    } catch (err) {
      const why = errnoCode(err) === "ENOENT" ? "does not exist" : `cannot be opened (${errnoCode(err) ?? (err as Error).message})`;
      throw new CredentialStoreError("CREDENTIALS_FILE_UNREADABLE", `registry credentials file ${file} ${why}`, { cause: err });
    }
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new CredentialStoreError("CREDENTIALS_FILE_UNREADABLE", `registry credentials file ${file} is not a regular file`);
      // POSIX permission bits mean nothing on Windows; there the file's ACL is the operator's to set.
      if (process.platform !== "win32" && (st.mode & 0o077) !== 0) {
        throw new CredentialStoreError(
          "CREDENTIALS_FILE_INSECURE",
          `registry credentials file ${file} has mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}, so group or others can access it; Ferry refuses it until it is private: chmod 600 ${file}`,
        );
      }
      if (st.size > MAX_FILE_BYTES) throw new CredentialStoreError("CREDENTIALS_FILE_INVALID", `registry credentials file ${file} is larger than ${MAX_FILE_BYTES} bytes`);
      const text = await handle.readFile({ encoding: "utf8" });
      let doc: unknown;
      try {
        doc = JSON.parse(text);
      } catch {
        throw new CredentialStoreError("CREDENTIALS_FILE_INVALID", `registry credentials file ${file} is not valid JSON`);
      }
      if (!isRecord(doc)) {
        throw new CredentialStoreError("CREDENTIALS_FILE_INVALID", `registry credentials file ${file} must hold a JSON object of reference → {"username", "password"}`);
      }
      return doc;
    } catch (err) {
      if (err instanceof CredentialStoreError) throw err;
      throw new CredentialStoreError("CREDENTIALS_FILE_UNREADABLE", `registry credentials file ${file} cannot be read (${errnoCode(err) ?? "error"})`, { cause: err });
    } finally {
      await handle.close();
    }
  }
}
