// Entry point of the `ferry-agent` binary (bin/ferry-agent.js imports the built copy of this file).
import { runCli } from "./program.js";

process.exitCode = await runCli(process.argv.slice(2));
// Every handle should be closed by now; if a library left one open, do not hang a supervisor's stop.
setTimeout(() => process.exit(), 3_000).unref();
