// The fleet CA on disk: <dir>/ca.crt (0644) and <dir>/ca.key (0600, PKCS#8 PEM, unencrypted), in a 0700 directory.
//
// The key file is protected by file permissions only, as with sshd host keys; keeping it in an HSM/KMS would
// replace this module. Files are written atomically so a crash never leaves a half-written key, and the key is
// placed without overwriting so two processes creating the CA at once cannot end up with mismatched halves.
import { promises as fs } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import * as path from "node:path";
import { errnoCode, placeFile } from "./atomic-file.js";
import { PkiError } from "./pki-error.js";

export const CA_CERT_FILE = "ca.crt";
export const CA_KEY_FILE = "ca.key";

export type CaFilesState =
  | { kind: "absent" }
  | { kind: "partial"; present: string; missing: string }
  | { kind: "present"; certPem: string; keyPem: string };

// Each file is a few hundred bytes; anything far larger is not ours.
const MAX_FILE_BYTES = 64 * 1024;

async function exists(file: string): Promise<boolean> {
  try {
    await fs.stat(file);
    return true;
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return false;
    throw new PkiError("CA_FILES_INVALID", `cannot stat ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** Creates the CA directory (0700) if missing. An existing directory keeps the mode the operator gave it. */
export async function ensureCaDir(dir: string): Promise<void> {
  try {
    const created = await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    // mkdir's mode is filtered by the umask; chmod makes the result exact.
    if (created !== undefined) await fs.chmod(dir, 0o700);
    const st = await fs.stat(dir);
    if (!st.isDirectory()) throw new Error("not a directory");
  } catch (err) {
    throw new PkiError("CA_FILES_INVALID", `cannot use ${dir} as the CA directory: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

async function readKeyFile(file: string): Promise<string> {
  let fh: FileHandle;
  try {
    fh = await fs.open(file, "r");
  } catch (err) {
    throw new PkiError("CA_FILES_INVALID", `cannot open ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    // Mode and content come from the same open file, so the file cannot be swapped between the check and the read.
    const st = await fh.stat();
    if (!st.isFile()) throw new PkiError("CA_FILES_INVALID", `${file} is not a regular file`);
    // POSIX mode bits mean nothing on Windows, where the directory's ACL is what protects the key.
    if (process.platform !== "win32" && (st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, "0");
      throw new PkiError(
        "CA_FILES_INVALID",
        `${file} has mode ${mode}: the CA private key must not be accessible to group or others ` +
          `(run: chmod 600 ${file})`,
      );
    }
    if (st.size > MAX_FILE_BYTES) throw new PkiError("CA_FILES_INVALID", `${file} is too large to be a CA key`);
    return await fh.readFile("utf8");
  } catch (err) {
    if (err instanceof PkiError) throw err;
    throw new PkiError("CA_FILES_INVALID", `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  } finally {
    await fh.close();
  }
}

async function readCertFile(file: string): Promise<string> {
  try {
    const st = await fs.stat(file);
    if (!st.isFile() || st.size > MAX_FILE_BYTES) throw new Error("not a certificate file");
    return await fs.readFile(file, "utf8");
  } catch (err) {
    throw new PkiError("CA_FILES_INVALID", `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

export async function readCaFiles(dir: string): Promise<CaFilesState> {
  const certFile = path.join(dir, CA_CERT_FILE);
  const keyFile = path.join(dir, CA_KEY_FILE);
  const [hasCert, hasKey] = await Promise.all([exists(certFile), exists(keyFile)]);
  if (!hasCert && !hasKey) return { kind: "absent" };
  if (!hasCert) return { kind: "partial", present: keyFile, missing: certFile };
  if (!hasKey) return { kind: "partial", present: certFile, missing: keyFile };
  const keyPem = await readKeyFile(keyFile);
  const certPem = await readCertFile(certFile);
  return { kind: "present", certPem, keyPem };
}

/**
 * Writes a newly created CA. The key goes first and never overwrites: if another process placed a key first,
 * "exists" is returned and the caller loads that CA instead of its own.
 */
export async function writeNewCaFiles(dir: string, certPem: string, keyPem: string): Promise<"written" | "exists"> {
  try {
    if ((await placeFile(dir, CA_KEY_FILE, keyPem, 0o600, true)) === "exists") return "exists";
    await placeFile(dir, CA_CERT_FILE, certPem, 0o644, false);
    return "written";
  } catch (err) {
    throw new PkiError("CA_FILES_INVALID", `cannot write the CA files in ${dir}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
