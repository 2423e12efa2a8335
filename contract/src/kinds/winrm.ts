// winrm: a Windows host reached over WS-Management from a gateway agent (docs/drivers/winrm.md). Modes:
//   service  a Windows service: stop it, run the install script (which puts the release's bits in place), start it,
//            check it runs (and answers an HTTP check on the host's loopback, when given)
//   script   the operator's PowerShell scripts, with the release's digests in their environment
// Credentials are never here (this config is signed into tasks and stored by the control plane): `credentialsRef`
// names an entry of the gateway agent's drivers.winrm.credentialsFile.
import type { ObjectRule } from "../config-schema.js";
import { singleImage, type TargetKindDescriptor } from "../target-kind.js";
import { ENV_KEY_PATTERN, HOST_PATTERN, httpUrl } from "./common.js";

export const WINRM_MODES = ["service", "container", "script"] as const;
export type WinrmMode = (typeof WINRM_MODES)[number];

export interface WinrmScriptConfig {
  deploy: string;
  health?: string;
  rollback?: string;
  env?: Record<string, string>;
  timeoutSeconds?: number;
}

export interface WinrmServiceConfig {
  /** The service's name (Get-Service -Name). */
  name: string;
  /** Run while the service is stopped: puts the release in place (the image digest is in $env:FERRY_IMAGE). */
  install: string;
  /** Run by restore while the service is stopped, with the previous release in its environment. */
  rollback?: string;
  env?: Record<string, string>;
  /** How long the service must keep running after start; default 5. */
  settleSeconds?: number;
  /** GET on the host's loopback until 2xx, within timeoutSeconds. */
  healthUrl?: string;
  /** Bounds each step (stop, install, start, check); default 120. */
  timeoutSeconds?: number;
}

export interface WinrmContainerConfig {
  /** The container's name on the host's Docker Engine. */
  name: string;
  env?: Record<string, string>;
  command?: string[];
  /** How long the new container must keep running with no restart; default 5. */
  settleSeconds?: number;
  healthUrl?: string;
  /** Bounds the pull and each step; default 600. */
  timeoutSeconds?: number;
}

export interface WinrmTargetConfig {
  host: string;
  port?: number;
  transport?: "https" | "http";
  auth?: "ntlm" | "basic";
  /** An entry of the gateway agent's credentials file; default "default". */
  credentialsRef?: string;
  mode?: WinrmMode;
  service?: WinrmServiceConfig;
  container?: WinrmContainerConfig;
  script?: WinrmScriptConfig;
  stickerPath?: string;
  /** WS-Man OperationTimeout for each Receive; default 20. */
  operationTimeoutSeconds?: number;
  component?: string;
}

const SCRIPT_MAX = 65_536;
const WINDOWS_PATH = /^[A-Za-z]:\\[^'"\n\0]*$/;
const env = { type: "string-map", keyPattern: ENV_KEY_PATTERN, keyHint: "is not a valid environment variable name", maxItems: 64 } as const;

const rules: ObjectRule[] = [
  (c) => ((c["mode"] ?? "script") === "script" && c["script"] === undefined ? ["script", "is required when mode is script"] : undefined),
  (c) => (c["mode"] === "service" && c["service"] === undefined ? ["service", "is required when mode is service"] : undefined),
  (c) => (c["mode"] === "service" && c["script"] !== undefined ? ["script", "is only for mode script"] : undefined),
  (c) => ((c["mode"] ?? "script") === "script" && c["service"] !== undefined ? ["service", "is only for mode service"] : undefined),
  (c) => (c["mode"] === "container" && c["container"] === undefined ? ["container", "is required when mode is container"] : undefined),
  (c) => (c["mode"] !== "container" && c["container"] !== undefined ? ["container", "is only for mode container"] : undefined),
];

export const winrmKind: TargetKindDescriptor<WinrmTargetConfig> = {
  kind: "winrm",
  title: "a Windows host reached over WinRM",
  config: {
    fields: {
      host: { type: "string", required: true, maxLength: 253, pattern: HOST_PATTERN, hint: "must be a host name or IP address" },
      port: { type: "integer", min: 1, max: 65535, doc: "default 5986 (https) or 5985 (http)" },
      transport: { type: "string", enum: ["https", "http"], doc: "default https" },
      auth: { type: "string", enum: ["ntlm", "basic"], doc: "default ntlm" },
      credentialsRef: { type: "string", maxLength: 128, pattern: /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/, hint: "must name an entry of the agent's drivers.winrm.credentialsFile", doc: "default \"default\"" },
      mode: { type: "string", enum: WINRM_MODES, doc: "default script" },
      service: {
        type: "object",
        fields: {
          name: { type: "string", required: true, maxLength: 256, pattern: /^[A-Za-z0-9_.$ -]+$/, hint: "must be a Windows service name" },
          install: { type: "string", required: true, maxLength: SCRIPT_MAX },
          rollback: { type: "string", maxLength: SCRIPT_MAX },
          env,
          settleSeconds: { type: "integer", min: 0, max: 600 },
          healthUrl: httpUrl("GET on the host's loopback until 2xx"),
          timeoutSeconds: { type: "integer", min: 1, max: 3600 },
        },
      },
      container: {
        type: "object",
        doc: "mode container: a Windows container on the host's Docker Engine, driven with the docker CLI through PowerShell",
        fields: {
          name: { type: "string", required: true, maxLength: 128, pattern: /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/, hint: "must be a Docker container name", check: (s) => (s.includes(".ferry-old-") ? 'must not contain ".ferry-old-"' : undefined) },
          env,
          command: { type: "string-list", minItems: 1, maxItems: 64 },
          settleSeconds: { type: "integer", min: 0, max: 600 },
          healthUrl: httpUrl("GET on the host's loopback until 2xx"),
          timeoutSeconds: { type: "integer", min: 1, max: 3600 },
        },
      },
      script: {
        type: "object",
        fields: {
          deploy: { type: "string", required: true, maxLength: SCRIPT_MAX },
          health: { type: "string", maxLength: SCRIPT_MAX },
          rollback: { type: "string", maxLength: SCRIPT_MAX },
          env,
          timeoutSeconds: { type: "integer", min: 1, max: 86_400 },
        },
      },
      stickerPath: { type: "string", maxLength: 1024, pattern: WINDOWS_PATH, hint: "must be an absolute Windows path (C:\\…) without quotes" },
      operationTimeoutSeconds: { type: "integer", min: 1, max: 300 },
      component: { type: "string", maxLength: 128 },
    },
    rules,
  },
  capabilities: [],
  sticker: "a sticker file on the host",
  placement: "gateway",
  typed: (c) => c as unknown as WinrmTargetConfig,
  imagesFor: (config, pins) => singleImage(config.component, pins),
};
