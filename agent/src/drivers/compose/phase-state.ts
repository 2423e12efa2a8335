// What the compose driver records between its phases: plain JSON, so restore (and a later task) works from it alone.
import type { ComposeLockService } from "@ferry/contract";

import type { StartMark } from "../docker/health.js";
import type { ComposeCli } from "./compose-cli.js";
import type { RoutedStart } from "./slots.js";

/** A mapped service as prepare found it before anything changed. */
export interface ServiceBefore {
  service: string;
  /** The container that ran it ("" when the service had none). */
  containerId: string;
  digest: string;
  running: boolean;
  crashLooping: boolean;
}

export type ComposePhaseState = {
  socketPath: string;
  directory: string;
  file: string;
  cli: ComposeCli;
  lock: { text: string; sha256: string; services: ComposeLockService[] };
  /** The lock file (and its sticker file) on the host before this task; null when there was none. */
  previousLock: string | null;
  previousSticker: string | null;
  before: ServiceBefore[];
  /** Services whose running digest is not the lock's (or that do not run): the only ones start touches. */
  changed: string[];
  /** Set by start as it goes, so restore knows how far it got. */
  lockWritten?: boolean;
  upStarted?: boolean;
  /** Per changed service, the container start left running and its mark: a restart after this is a crash. */
  started?: Record<string, { containerId: string; mark: StartMark; healthcheck: boolean }>;
  stickerWritten?: boolean;
  /** Per routed service (config.routes) that changed: the `restart:` setting its slot containers get. */
  restart?: Record<string, string>;
  /** Per routed service that changed: what start did with its slots (slots.ts). */
  routed?: Record<string, RoutedStart>;
  /** Routed services whose own (unrouted) container start removed: restore brings them back. */
  plainRemoved?: string[];
};
