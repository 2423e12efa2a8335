// Every code a task can end with, other than success: the agent's refusals of a task, its own faults, every driver's
// failures, and what the control plane records when a task never ran to the end. Codes are part of the task result
// operators and automation read, so they are stable: add codes, never rename or reuse one.
//
//   outcome    failed    the target said no (a check failed, an image is bad); the target is as it was
//              errored   a system fault (the agent, the engine, a restore that failed); the target may need a look
//              refused   the agent would not run the task at all; nothing was touched
//   retryable  whether running the same task again, unchanged, may succeed (an engine that was down, a registry
//              timeout, a lease that expired) — as opposed to terminal (a bad signature, an image that crashes, a
//              config that does not fit). Automation (the rollout engine's per-step retry) retries only these.
// docs/errors.md renders this table beside the API's codes.
export type ResultOutcome = "failed" | "errored" | "refused";

export interface ResultCodeInfo {
  outcome: ResultOutcome;
  retryable: boolean;
  /** Who raises it: the agent core, a driver (any), or the control plane's task queue. */
  source: "agent" | "driver" | "control-plane";
  description: string;
}

export const RESULT_CODES = {
  // Refusals (agent core): nothing was touched.
  TASK_MALFORMED: { outcome: "refused", retryable: false, source: "agent", description: "The payload is not a task this agent reads: wrong type or version, not canonical JSON, wrong shape, or an image not pinned by digest." },
  TASK_UNKNOWN_KEY: { outcome: "refused", retryable: false, source: "agent", description: "The task was signed by a key the agent does not trust (unknown, or retired)." },
  TASK_BAD_SIGNATURE: { outcome: "refused", retryable: false, source: "agent", description: "The signature does not verify over the payload received." },
  TASK_WRONG_AUDIENCE: { outcome: "refused", retryable: false, source: "agent", description: "The task is addressed to another agent." },
  TASK_EXPIRED: { outcome: "refused", retryable: false, source: "agent", description: "The task's not-after time has passed." },
  TASK_REPLAYED: { outcome: "refused", retryable: false, source: "agent", description: "The nonce was used by another task, or the task already ran." },
  TASK_NO_DRIVER: { outcome: "refused", retryable: false, source: "agent", description: "The agent has no driver for the target's kind." },
  TASK_PHASES_UNSUPPORTED: { outcome: "refused", retryable: false, source: "agent", description: "The task asks for a run of phases this agent's driver cannot perform as a separate step." },
  TASK_ROUTE_UNSUPPORTED: { outcome: "refused", retryable: false, source: "agent", description: "A route task (router weights, measure, maintenance) went to an agent whose driver for the kind has no router configured." },
  TASK_REFUSED: { outcome: "refused", retryable: false, source: "control-plane", description: "The agent refused the task without a code (an agent older than the codes)." },
  INVALID_TARGET_CONFIG: { outcome: "refused", retryable: false, source: "driver", description: "The target's config does not fit its kind's schema, or does not fit the task's images; names the field." },
  RELEASE_COMPONENT_MISSING: { outcome: "refused", retryable: false, source: "driver", description: "The target runs a component the task carries no image for." },
  RELEASE_COMPONENT_AMBIGUOUS: { outcome: "refused", retryable: false, source: "driver", description: "The task carries several images and the target does not say which one it runs." },
  // Faults of the agent itself.
  TASK_INTERRUPTED: { outcome: "errored", retryable: true, source: "agent", description: "The agent stopped while the task ran; it was not run again. The result carries what the driver found on the target." },
  AGENT_ERROR: { outcome: "errored", retryable: true, source: "agent", description: "An unexpected fault in the agent; the message says what." },
  ABORTED: { outcome: "failed", retryable: true, source: "driver", description: "The task was cancelled while it ran; what ran before was put back." },
  // Driver failures (every driver uses these where they apply).
  IMAGE_PULL_FAILED: { outcome: "failed", retryable: true, source: "driver", description: "The registry refused or failed the pull (auth, unknown manifest, network). Nothing was touched." },
  DIGEST_MISMATCH: { outcome: "failed", retryable: false, source: "driver", description: "What was pulled or started does not carry the pinned digest (tampered registry, moved image, bad pin)." },
  HEALTH_CHECK_FAILED: { outcome: "failed", retryable: false, source: "driver", description: "The new instance did not become healthy in time, or its own HEALTHCHECK said unhealthy; what ran before was put back. details.health has what the check saw." },
  INSTANCE_CRASHED: { outcome: "failed", retryable: false, source: "driver", description: "The new instance exited or restarted during the settle window (a crash loop); its exit code and last output are in the task log. What ran before was put back." },
  RESTORE_FAILED: { outcome: "errored", retryable: false, source: "driver", description: "The task failed and putting back what ran before failed too: the target needs an operator. details has both errors." },
  // Docker.
  DOCKER_UNAVAILABLE: { outcome: "errored", retryable: true, source: "driver", description: "The Docker Engine did not answer on its socket." },
  CONTAINER_CREATE_FAILED: { outcome: "failed", retryable: false, source: "driver", description: "The engine refused to create the new container (name, config, resources)." },
  CONTAINER_START_FAILED: { outcome: "failed", retryable: false, source: "driver", description: "The engine refused to start the new container, or to stop the previous one." },
  // Compose.
  COMPOSE_CLI_MISSING: { outcome: "errored", retryable: true, source: "driver", description: "Neither docker-compose nor docker compose runs on the host; install one (docs/drivers/compose.md)." },
  COMPOSE_PROJECT_INVALID: { outcome: "refused", retryable: false, source: "driver", description: "The project's directory is missing or not writable, or its compose file is missing; nothing was touched. details.field names the config field." },
  COMPOSE_FILE_INVALID: { outcome: "refused", retryable: false, source: "driver", description: "The compose file does not load (invalid YAML, Compose says no), a mapped service is not in it, or a service has build: and no image (Ferry deploys images, it does not build). Nothing was touched." },
  COMPOSE_UP_FAILED: { outcome: "failed", retryable: false, source: "driver", description: "docker-compose up (or down) failed for a service; the message has Compose's own words. What ran before was put back." },
  // The host router (docs/rollouts.md#the-router).
  ROUTER_UNAVAILABLE: { outcome: "errored", retryable: true, source: "agent", description: "The host router (HAProxy's runtime socket) did not answer." },
  ROUTER_COMMAND_FAILED: { outcome: "failed", retryable: false, source: "agent", description: "The host router refused a change (a weight, a server address, a maintenance message); the message carries its answer." },
  ROUTE_UNKNOWN: { outcome: "refused", retryable: false, source: "agent", description: "The host router has no route (backend with a blue and a green server) for the target's service: its config does not match the target's route." },
  ROUTE_SPLIT_UNCONFIGURED: { outcome: "refused", retryable: false, source: "agent", description: "A route task asked for an A/B split by a cookie or header the target's route does not name (config.route.split absent or different): the router's split rules are generated from it (docs/rollouts.md#ab-split). Nothing was changed." },
  // Platforms with their own rollout (ECS, Nomad), driven from a gateway agent.
  TARGET_NOT_FOUND: { outcome: "failed", retryable: false, source: "driver", description: "The platform does not know what the target names (an ECS cluster or service, a Nomad job, or a container or task the target maps). Nothing was touched." },
  TARGET_UNSUPPORTED: { outcome: "failed", retryable: false, source: "driver", description: "The target is set up in a way the driver does not drive (an ECS service whose deployment controller is not ECS, a Nomad task that is not a Docker task); the message says what. Nothing was touched." },
  PLATFORM_UNAVAILABLE: { outcome: "errored", retryable: true, source: "driver", description: "The platform's API did not answer, throttled past the driver's retries, or failed (network, 5xx, 429)." },
  PLATFORM_ACCESS_DENIED: { outcome: "failed", retryable: false, source: "driver", description: "The platform refused the gateway agent's credentials for a call (AWS AccessDenied, Nomad 403 Permission denied); the call is named." },
  PLATFORM_REJECTED: { outcome: "failed", retryable: false, source: "driver", description: "The platform refused a change as invalid (an ECS ClientException or InvalidParameterException, a Nomad 400); what ran before was put back." },
  CANARY_ANALYSIS_FAILED: { outcome: "failed", retryable: false, source: "driver", description: "Ferry's analysis of the canaries before promotion failed (a canary allocation stopped being healthy during the bake, or the probe did not answer 2xx); the canaries were not promoted and what ran before was put back." },
  PLATFORM_BUSY: { outcome: "failed", retryable: true, source: "driver", description: "A deployment not started by this task is running on the target, or the job changed under the task (Nomad check-and-set); nothing of this task was applied." },
  // Agentless targets (ssh, winrm): the gateway agent's connection to the host.
  HOST_UNREACHABLE: { outcome: "errored", retryable: true, source: "driver", description: "The gateway agent could not connect to the host (refused, no route, DNS, connect timeout). Nothing was touched." },
  HOST_KEY_MISMATCH: { outcome: "refused", retryable: false, source: "driver", description: "The host presented a key other than the one pinned in the target's config (or recorded on first use): the agent did not log in. Nothing was touched." },
  HOST_KEY_UNKNOWN: { outcome: "refused", retryable: false, source: "driver", description: "The target pins no host key and trust on first use is not possible (no drivers.ssh.knownHostsFile on the agent). Nothing was touched." },
  SSH_AUTH_FAILED: { outcome: "refused", retryable: false, source: "driver", description: "The host refused the gateway agent's key (or the key file is missing or unreadable). Nothing was touched." },
  CONNECTION_LOST: { outcome: "errored", retryable: true, source: "driver", description: "The connection to the host dropped while a command ran; the result carries what the agent then found on the host." },
  COMMAND_NOT_FOUND: { outcome: "failed", retryable: false, source: "driver", description: "The host has no such command (exit code 127, or a PowerShell CommandNotFoundException): sh, sudo, docker, a script's command." },
  SCRIPT_FAILED: { outcome: "failed", retryable: false, source: "driver", description: "A deploy or health script exited non-zero; its exit code and last output are in the task log and details." },
  SCRIPT_TIMEOUT: { outcome: "failed", retryable: false, source: "driver", description: "A script ran longer than its timeout and was stopped." },
  WINRM_AUTH_FAILED: { outcome: "refused", retryable: false, source: "driver", description: "The WinRM service refused the gateway agent's credentials (HTTP 401) or the account may not use WinRM (access denied, WSMan fault 5). Nothing was touched." },
  HOST_CERTIFICATE_REJECTED: { outcome: "refused", retryable: false, source: "driver", description: "The host's TLS certificate does not chain to a CA the gateway agent trusts, or does not name the host. Nothing was touched." },
  WINRM_QUOTA_EXCEEDED: { outcome: "errored", retryable: true, source: "driver", description: "The WinRM service refused another shell for the account (w:QuotaLimit): too many shells or operations at once." },
  WINRM_FAULT: { outcome: "errored", retryable: false, source: "driver", description: "The WinRM service answered a WS-Management fault (details.wsmanCode, details.subcode), or an envelope was over its MaxEnvelopeSize." },
  SERVICE_NOT_FOUND: { outcome: "failed", retryable: false, source: "driver", description: "The Windows service the target names does not exist on the host. Nothing was touched." },
  SUDO_REFUSED: { outcome: "refused", retryable: false, source: "driver", description: "The ssh target runs commands through sudo and sudo on the host would not run one without a password (the driver runs `sudo -n`, which never prompts): the login user has no NOPASSWD sudoers rule for that exact command. The command did not run." },
  // Control plane's task queue.
  TASK_NOT_DELIVERED: { outcome: "errored", retryable: true, source: "control-plane", description: "No agent took the task before its not-after time (agent offline)." },
  TASK_LEASE_EXPIRED: { outcome: "errored", retryable: true, source: "control-plane", description: "The agent took the task and then stopped reporting on it before its lease ran out." },
  CANCELLED: { outcome: "refused", retryable: false, source: "control-plane", description: "An operator cancelled the task before an agent took it." },
  COMPOSE_LOCK_MISMATCH: { outcome: "errored", retryable: false, source: "control-plane", description: "The agent reported success for a compose task, but the SHA-256 of the lock file it wrote (details.lockSha256) is not the one stored with the task (details.expectedLockSha256). The target may run something Ferry did not sign; it is not recorded as deployed." },
} as const satisfies Record<string, ResultCodeInfo>;

export type ResultCode = keyof typeof RESULT_CODES;

export function isResultCode(code: string): code is ResultCode {
  return Object.hasOwn(RESULT_CODES, code);
}

/** Whether a task that ended with `code` may succeed if run again unchanged. Unknown codes are terminal. */
export function isRetryable(code: string): boolean {
  return isResultCode(code) ? RESULT_CODES[code].retryable : false;
}
