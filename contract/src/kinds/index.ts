// Every target kind Ferry knows, one descriptor each. A new kind is one file here plus one line below; the control
// plane and the agent take their kinds from their own registration lines.
export { dockerKind, OLD_CONTAINER_MARKER, SPLIT_KEY_NAME, type DockerPort, type DockerRoute, type DockerRouteSplit, type DockerTargetConfig, type DockerVolume } from "./docker.js";
export { composeKind, COMPOSE_SERVICE_PATTERN, type ComposeRoute, type ComposeTargetConfig } from "./compose.js";
export { composeLock, composeServiceMap, parseComposeLock, COMPOSE_LOCK_FILE, COMPOSE_LOCK_LABELS, type ComposeLock, type ComposeLockService } from "./compose-lock.js";
export { ecsKind, type EcsTargetConfig } from "./ecs.js";
export { nomadKind, type NomadCanaryAnalysis, type NomadTargetConfig } from "./nomad.js";
export { sshKind, type SshTargetConfig } from "./ssh.js";
export { winrmKind, type WinrmContainerConfig, type WinrmTargetConfig } from "./winrm.js";
export { HEALTH_CHECK_TYPES, type HealthCheckConfig, type HealthCheckType } from "./common.js";
export { TARGET_CONFIG_CASES, type TargetConfigCase } from "./config-cases.js";
