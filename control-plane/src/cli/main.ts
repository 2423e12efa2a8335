// `ferry` — the operator and CI command line.
// Exit codes: 0 success, 1 the server refused (the error code is printed), 2 usage or configuration error,
// 3 the control plane could not be reached, 4 gave up waiting (--wait --timeout) with the work still going on.
import { CommanderError } from "commander";
import { ApiError, ConnectError } from "./api-client.js";
import { safe } from "./format.js";
import { buildProgram } from "./program.js";

const program = buildProgram();

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help") process.exit(0);
      if (err.code === "ferry.timeout") {
        process.stderr.write(`error: ${safe(err.message)}\n`);
        process.exit(4);
      }
      if (err.code === "ferry.usage") process.stderr.write(`error: ${safe(err.message)}\n`);
      process.exit(2);
    }
    if (err instanceof ApiError) {
      process.stderr.write(`error: ${safe(err.code)}: ${safe(err.message)}\n`);
      process.exit(1);
    }
    if (err instanceof ConnectError) {
      process.stderr.write(`error: ${safe(err.message)}\n`);
      process.exit(3);
    }
    const code = (err as { code?: string }).code;
    process.stderr.write(`error: ${code ? `${safe(code)}: ` : ""}${safe((err as Error).message)}\n`);
    process.exit(code === "VALIDATION_FAILED" || code === "STORE_LOCKED" || code === "STORE_COPY_REFUSED" ? 2 : 1);
  }
}

void main();
