// Which of node's runtime flags suit this configuration (docs/agent.md, "Node flags").
//
// The systemd unit and the container image run the agent with `--jitless` (docs/performance.md, "Agent runtime
// flags"): no compiled code at all, and about 1.3 MB less resident memory. It also removes WebAssembly, and one driver
// needs it: ssh2, under the SSH driver, computes its chacha20-poly1305 MAC in WebAssembly and opens no connection
// without it. So the `ferry-agent` wrapper and the image's entry point ask `ferry-agent node-flags` before `run` and
// `enrol`, which drops the flags that remove WebAssembly when an enabled driver needs it; and an agent started with
// them anyway (node run by hand) stops at once with RUNTIME_FLAGS_UNSUITABLE instead of failing at its first SSH
// connection.
import { AgentError } from "../core/agent-error.js";
import type { DriverRegistration } from "../drivers/driver.js";
import type { AgentConfig } from "./agent-config.js";
import { enabledRegistrations } from "./driver-settings.js";

/**
 * Whether a V8 flag removes WebAssembly: `--jitless` and `--lite-mode` (which implies it), and `--no-expose-wasm`,
 * which the unit sets beside `--jitless` because V8 would otherwise warn on every start that it turns it off. V8 reads
 * `_` and `-` alike, and `--flag=true|false` as `--flag` and `--no-flag`.
 */
function removesWebAssembly(flag: string): boolean {
  const [name = "", value] = flag.replaceAll("_", "-").split("=", 2);
  const on = value === undefined || value === "true" || value === "1";
  if (name === "--jitless" || name === "--lite-mode") return on;
  if (name === "--no-expose-wasm") return on;
  return name === "--expose-wasm" && (value === "false" || value === "0");
}

/** The enabled drivers that need WebAssembly, with why: `["drivers.ssh (ssh2's …)"]`. */
export function webAssemblyUsers(config: Pick<AgentConfig, "drivers">, registrations: readonly DriverRegistration[]): string[] {
  return enabledRegistrations(config, registrations).flatMap((reg) => (reg.needsWebAssembly ? [`drivers.${reg.descriptor.kind} (${reg.needsWebAssembly})`] : []));
}

/**
 * `flags` (FERRY_AGENT_NODE_FLAGS: words separated by white space) as this configuration should run with them: the
 * same words, without those that remove WebAssembly when an enabled driver needs it.
 */
export function nodeFlagsFor(flags: string, users: readonly string[]): string {
  const words = flags.split(/\s+/).filter((w) => w !== "");
  return (users.length === 0 ? words : words.filter((w) => !removesWebAssembly(w))).join(" ");
}

/** Refuses to go on without WebAssembly when an enabled driver needs it (node was started with --jitless by hand). */
export function checkWebAssembly(users: readonly string[], hasWebAssembly = "WebAssembly" in globalThis): void {
  if (users.length === 0 || hasWebAssembly) return;
  throw new AgentError(
    "RUNTIME_FLAGS_UNSUITABLE",
    "usage",
    `${users.join(", ")} needs WebAssembly, which node's --jitless, --lite-mode and --no-expose-wasm flags remove; start the agent through ` +
      "the ferry-agent wrapper or the image's entry point, which leave them out for this configuration, or remove them from FERRY_AGENT_NODE_FLAGS",
  );
}
