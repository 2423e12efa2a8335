// Errors from @ferry/pki that can escape a request (a keyring rotation, a certificate issued or parsed on the way),
// in the API's vocabulary. CSR problems are the caller's; anything about the control plane's own keys and
// certificates is a server fault with a code of its own, so an operator sees which material to look at.
import { PkiError, TaskKeyringError } from "@ferry/pki";
import { FerryError } from "../../domain/errors.js";

export function foldPkiError(err: unknown): FerryError | null {
  if (err instanceof TaskKeyringError) {
    return err.code === "TASK_KEYRING_BUSY"
      ? new FerryError("TASK_KEYRING_BUSY", "another rotation of the task-signing keys is in progress; retry shortly", {}, { cause: err })
      : new FerryError("TASK_KEYRING_INVALID", "the task-signing keyring cannot be used; the server log says why", {}, { cause: err });
  }
  if (err instanceof PkiError) {
    if (err.code === "CSR_INVALID" || err.code === "CSR_KEY_NOT_ALLOWED") return new FerryError(err.code, err.message, {}, { cause: err });
    return new FerryError("PKI_MATERIAL_INVALID", "the control plane's certificate or key material cannot be used; the server log says why", { reason: err.code }, { cause: err });
  }
  return null;
}
