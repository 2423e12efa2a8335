// The Engine API shapes the drivers read (docs.docker.com/engine/api, v1.41 and later; the fields below are in every
// version the drivers support). Only what the code reads or sends is typed: the engine answers with more, and a field
// an older engine leaves out is optional here.

/** One container as GET /containers/json lists it. */
export interface ContainerSummary {
  Id: string;
  /** With the engine's leading "/": ["/web"]. */
  Names: string[];
  Image: string;
  ImageID: string;
  /** Seconds since the epoch. */
  Created: number;
  State: string;
  Status: string;
  Labels: Record<string, string>;
}

export interface HealthLogEntry {
  Start: string;
  End: string;
  ExitCode: number;
  Output: string;
}

export interface ContainerState {
  /** created, running, paused, restarting, removing, exited, dead. */
  Status: string;
  Running: boolean;
  Paused: boolean;
  Restarting: boolean;
  OOMKilled: boolean;
  Dead: boolean;
  Pid: number;
  ExitCode: number;
  Error: string;
  StartedAt: string;
  FinishedAt: string;
  Health?: { Status: string; FailingStreak: number; Log?: HealthLogEntry[] | null };
}

export interface HealthConfig {
  /** ["NONE"], ["CMD", …], ["CMD-SHELL", "…"]; absent or empty: inherit the image's. */
  Test?: string[];
  Interval?: number;
  Timeout?: number;
  Retries?: number;
  StartPeriod?: number;
}

/** GET /containers/{id}/json. */
export interface ContainerInspect {
  Id: string;
  /** RFC 3339 with up to nine fraction digits. */
  Created: string;
  /** With the engine's leading "/". */
  Name: string;
  /** The image id (sha256:…) the container runs. */
  Image: string;
  RestartCount: number;
  State: ContainerState;
  Config: {
    /** The reference it was created from. */
    Image: string;
    Labels: Record<string, string> | null;
    Env?: string[] | null;
    Cmd?: string[] | null;
    Tty?: boolean;
    Healthcheck?: HealthConfig;
  };
  HostConfig: {
    NetworkMode?: string;
    RestartPolicy?: RestartPolicy;
  };
}

/** GET /images/{name}/json. */
export interface ImageInspect {
  Id: string;
  RepoTags: string[] | null;
  RepoDigests: string[] | null;
  Created: string;
  Size: number;
  Config: { Healthcheck?: HealthConfig; Labels?: Record<string, string> | null } | null;
}

/** One image as GET /images/json lists it. */
export interface ImageSummary {
  Id: string;
  RepoTags: string[] | null;
  RepoDigests: string[] | null;
  Created: number;
  Size: number;
}

export interface RestartPolicy {
  /** "", "no", "always", "unless-stopped", "on-failure". */
  Name: string;
  MaximumRetryCount?: number;
}

/** POST /containers/create: the container's name goes in the query, the rest is the body. */
export interface ContainerCreateOptions {
  name?: string;
  Image: string;
  Cmd?: string[];
  Env?: string[];
  Labels?: Record<string, string>;
  ExposedPorts?: Record<string, Record<string, never>>;
  Healthcheck?: HealthConfig;
  HostConfig?: {
    NetworkMode?: string;
    RestartPolicy?: RestartPolicy;
    Binds?: string[];
    PortBindings?: Record<string, Array<{ HostIp?: string; HostPort: string }>>;
  };
}

/** POST /containers/{id}/update: the settings the drivers change on a container that exists. */
export interface ContainerUpdateOptions {
  RestartPolicy?: RestartPolicy;
}

/** GET /version. */
export interface EngineVersion {
  Version: string;
  ApiVersion: string;
  MinAPIVersion?: string;
  Os: string;
  Arch: string;
}

/** The registry credentials the engine reads from X-Registry-Auth (base64url of this JSON). */
export interface AuthConfig {
  username?: string;
  password?: string;
  identitytoken?: string;
  serveraddress?: string;
}

/** One line of POST /images/create's newline-delimited JSON progress. */
export interface PullEvent {
  status?: string;
  id?: string;
  progress?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { code?: number; message?: string };
}

/** One line of GET /events. */
export interface EngineEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number;
}

/** Engine filters (?filters=): each key with the values it matches, e.g. { label: ["a=b"], name: ["web"] }. */
export type Filters = Record<string, string[]>;
