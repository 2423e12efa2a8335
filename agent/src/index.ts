// Public surface of @ferry/agent for tests and other packages.
export { AgentError, REENROL_CODES, isAgentError, type AgentErrorCode, type AgentErrorKind } from "./core/agent-error.js";
export { Backoff, backoffCeiling, backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "./core/backoff.js";
export { enrol, type EnrolOptions, type EnrolResult } from "./core/enrol.js";
export { agentVersion, collectFacts } from "./core/facts.js";
export {
  renewalTime,
  Session,
  type CertificateSummary,
  type RenewalOptions,
  type SessionEvents,
  type SessionOptions,
  type SessionResult,
  type SessionState,
  type StreamEnd,
} from "./core/session.js";
export {
  keyMatchesCertificate,
  StateDir,
  STATE_FILES,
  type AgentCredentials,
  type Identity,
  type LoadedState,
} from "./core/state-dir.js";
export { DriverRegistry, StaticDriverRegistry, type AdvertisedDriver, type AdvertisedDrivers } from "./drivers/registry.js";
export { DriverError, type Driver, type DriverRegistration, type PhaseContext, type PhaseState } from "./drivers/driver.js";
export { FakeDriver, fakeKind, fakeRegistration, type FakeScript } from "./drivers/fake/index.js";
export { resolveAgentConfig, type AgentConfig, type AgentFlags, type DriverSection, type Origin } from "./config/agent-config.js";
export { createLogger, type LoggerOptions, type LogLevel } from "./logger.js";
export { runAgent, runEnrol, type EnrolConfig, type RunConfig, type Runtime } from "./main.js";
export { EXIT, runCli, type CliIo } from "./cli/program.js";
