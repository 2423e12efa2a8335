// Pulling one pinned image through the engine, with progress a human can read.
//
// The engine streams a JSON event per layer per progress tick — thousands of lines for a large image. The task log
// gets the lines that say something (which repository, the digest, the final status), a one-line summary every few
// seconds, and a closing line with layer count, size and time.
//
// Credentials go to the engine in the X-Registry-Auth header only; they are never logged and never put in an error.
import { credentialRegistry, type ImagePin } from "@ferry/contract";
import type { EngineClient } from "./engine/client.js";
import type { AuthConfig, PullEvent } from "./engine/types.js";

import type { RegistryAuth } from "../driver.js";
import { dockerError, engineMessage, isEngineUnreachable } from "./errors.js";

const SUMMARY_EVERY_MS = 5_000;

/** The engine's authconfig for a pull; undefined sends none (anonymous pull). */
export function engineAuth(auth: RegistryAuth | undefined, registry: string): AuthConfig | undefined {
  if (!auth) return undefined;
  if (auth.identityToken) return { identitytoken: auth.identityToken, serveraddress: registry };
  if (auth.username === undefined && auth.password === undefined) return undefined;
  return { username: auth.username ?? "", password: auth.password ?? "", serveraddress: registry };
}

export interface PullSummary {
  layers: number;
  bytes: number;
  elapsedMs: number;
  /** The engine's closing status ("Downloaded newer image for …" / "Image is up to date for …"). */
  status: string;
}

/** The engine refuses content whose hash is not the digest asked for; that is a digest failure, not a pull failure. */
const DIGEST_REFUSAL = /verification failed|did not match|digest mismatch|does not match|unexpected digest/i;

const mb = (n: number) => `${(n / 1_048_576).toFixed(1)} MB`;

export async function pullImage(
  docker: EngineClient,
  pin: ImagePin,
  auth: RegistryAuth | undefined,
  signal: AbortSignal,
  log: (line: string) => void,
): Promise<PullSummary> {
  const registry = credentialRegistry(pin.repository);
  const started = Date.now();
  const layers = new Map<string, { current: number; total: number; done: boolean }>();
  let lastSummary = started;
  let finalStatus = "";

  const fail = (message: string): never => {
    const details = { image: pin.ref, registry, error: message, credentials: auth ? "supplied" : "none" };
    if (DIGEST_REFUSAL.test(message)) {
      throw dockerError("DIGEST_MISMATCH", `the registry served content for ${pin.ref} that does not hash to that digest: ${message}`, details);
    }
    throw dockerError("IMAGE_PULL_FAILED", `pulling ${pin.ref} failed: ${message}`, details);
  };

  const onEvent = (e: PullEvent) => {
    const status = e.status ?? "";
    // Layer events carry the layer's short id; the others (Pulling from …, Digest: …, Status: …) are worth a line.
    if (e.id && /^[0-9a-f]{12}$/.test(e.id)) {
      const layer = layers.get(e.id) ?? { current: 0, total: 0, done: false };
      if (status === "Downloading" && e.progressDetail) {
        layer.current = e.progressDetail.current ?? layer.current;
        layer.total = e.progressDetail.total ?? layer.total;
      }
      if (status === "Pull complete" || status === "Already exists") {
        layer.done = true;
        layer.current = layer.total;
      }
      layers.set(e.id, layer);
    } else if (status) {
      log(`pull: ${status}${e.id && !status.includes(e.id) ? ` ${e.id}` : ""}`);
      if (status.startsWith("Status:")) finalStatus = status.slice("Status:".length).trim();
    }
    const now = Date.now();
    if (now - lastSummary >= SUMMARY_EVERY_MS) {
      lastSummary = now;
      const all = [...layers.values()];
      log(
        `pull: ${all.filter((l) => l.done).length}/${all.length} layers complete, ` +
          `${mb(all.reduce((s, l) => s + l.current, 0))} of ${mb(all.reduce((s, l) => s + l.total, 0))} downloaded`,
      );
    }
  };

  let progress: AsyncGenerator<PullEvent, void, undefined>;
  try {
    // fromImage + tag=<digest> is the engine's pull-by-digest; the engine checks the manifest against the digest.
    progress = await docker.pull({ fromImage: pin.repository, tag: pin.digest, auth: engineAuth(auth, registry), signal });
  } catch (err) {
    signal.throwIfAborted();
    if (isEngineUnreachable(err)) throw dockerError("DOCKER_UNAVAILABLE", `the Docker Engine did not answer: ${engineMessage(err)}`, { error: engineMessage(err) });
    return fail(engineMessage(err));
  }
  // Once the engine has answered, whatever ends the pull early is the pull's failure: an error line in the progress
  // (the registry refused, the digest did not verify), the connection closing, an answer that cannot be read.
  try {
    for await (const e of progress) onEvent(e);
  } catch (err) {
    signal.throwIfAborted();
    fail(engineMessage(err));
  }
  signal.throwIfAborted();

  const all = [...layers.values()];
  const summary: PullSummary = { layers: all.length, bytes: all.reduce((s, l) => s + l.total, 0), elapsedMs: Date.now() - started, status: finalStatus };
  log(`pull: ${pin.ref}: ${summary.layers} layer(s), ${mb(summary.bytes)} downloaded, ${(summary.elapsedMs / 1000).toFixed(1)} s`);
  return summary;
}
