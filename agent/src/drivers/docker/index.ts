// The Docker target driver (docs/drivers/docker.md).
export { DockerDriver, DEFAULT_DOCKER_SOCKET, pickImage, resolveSocketPath, type DockerDriverOptions } from "./docker-driver.js";
export { parseDockerConfig, OLD_CONTAINER_MARKER, type DockerHealthCheck, type DockerPort, type DockerTargetConfig, type DockerVolume, type HealthCheckType } from "./config.js";
export { DEPLOY_STEPS, type DeployStep } from "./deploy.js";
export { LABELS as DOCKER_LABELS } from "./containers.js";
export { DOCKER_ERROR_CODES, type DockerErrorCode } from "./errors.js";
