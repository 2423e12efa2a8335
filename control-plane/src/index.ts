export { startControlPlane, type RunningControlPlane } from "./main.js";
export { resolveConfig, type RawConfig, type ResolvedConfig } from "./config/config.js";
export { createLogger } from "./logging.js";
export type { Store } from "./ports/store.js";
