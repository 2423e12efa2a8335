// prepare: get the pinned image into the engine and verify it. Nothing on the target changes, so the old container
// keeps serving however long the pull takes, and a pull or verify failure leaves the target exactly as it was.
//
//   - an image the engine already holds under exactly repository@digest is not pulled again. A digest names the
//     content, so such a pull would only fetch the manifest from the registry to find the image the engine has (it
//     re-checks no layer); the engine records repository@digest for an image when it pulls it by that digest (after
//     checking the manifest against it) or pushes it. This saves a registry round trip on every redeploy of a local
//     image, and lets a rollback to an image still in the engine work while the registry is down;
//   - otherwise the image is pulled by digest (the engine checks the manifest against the digest);
//   - either way, the image's RepoDigests must contain exactly repository@digest.
//
// A redelivered task whose container already runs this digest (same task id in its labels) is recognised here and
// recorded as `alreadyDeployed`: the later phases check it and tidy up instead of replacing it.
import { credentialRegistry, dockerKind, ImageSelectionError, pinProblem, type DockerTargetConfig, type ImagePin } from "@ferry/contract";
import type { EngineClient } from "./engine/client.js";
import type { ImageInspect } from "./engine/types.js";

import type { PhaseContext } from "../driver.js";
import { imageHasHealthcheck } from "./container-health.js";
import { findContainers, LABELS } from "./containers.js";
import { dockerError, engineMessage, isEngineUnreachable } from "./errors.js";
import type { DockerEnv, DockerPhaseState } from "./phase-state.js";
import { pullImage } from "./pull.js";

/** The one image this target runs, chosen by the kind's descriptor; a driver never runs anything but repository@digest. */
export function pickImage(config: DockerTargetConfig, images: readonly ImagePin[]): ImagePin {
  let pin: ImagePin | undefined;
  try {
    pin = dockerKind.imagesFor(config, images)[0];
  } catch (err) {
    if (err instanceof ImageSelectionError) throw dockerError(err.code, err.message, { field: err.field });
    throw err;
  }
  if (!pin) throw dockerError("RELEASE_COMPONENT_AMBIGUOUS", "config.component: the task carries no image", { field: "config.component" });
  // imagesFor rebuilds the ref from repository and digest; the task's own ref must be that very string.
  const given = images.find((i) => i.component === pin.component) ?? pin;
  const problem = pinProblem(given);
  if (problem) throw dockerError("DIGEST_MISMATCH", `the image pin for ${given.component} is not repository@sha256:<digest>: ${problem}`, { pin: given });
  return pin;
}

export async function prepare(ctx: PhaseContext<DockerTargetConfig>, env: DockerEnv): Promise<DockerPhaseState> {
  const { docker } = env;
  const name = ctx.config.container;
  const pin = pickImage(ctx.config, ctx.images);
  const log = (line: string) => ctx.progress.log(line);
  const base = { socketPath: env.socketPath, container: name, older: [] };
  ctx.signal.throwIfAborted();

  const [found, local] = await Promise.all([findContainers(docker, name), localImage(docker, pin)]);
  const same = found.current;
  if (same?.running && same.labels[LABELS.task] === ctx.taskId && same.labels[LABELS.digest] === pin.digest && same.digest === pin.digest) {
    log(`prepare: ${name} already runs ${pin.ref} for task ${ctx.taskId} (a redelivered task); checking it instead of deploying again`);
    const image = await docker.getImage(same.imageId).inspect();
    return { ...base, image: { ...pinFields(pin), id: image.Id }, imageHealthcheck: imageHasHealthcheck(image), source: "running", alreadyDeployed: true };
  }

  let image: ImageInspect;
  if (local) {
    log(`prepare: the engine already has ${pin.ref} (image ${local.Id.slice(7, 19)}); not pulling it again`);
    image = checkRepoDigests(local, pin, "local", log);
  } else {
    await pullImage(docker, pin, ctx.credentials(credentialRegistry(pin.repository)), ctx.signal, (l) => log(`prepare: ${l}`));
    image = checkRepoDigests(await pulledImage(docker, pin), pin, "pulled", log);
  }
  ctx.signal.throwIfAborted();
  return { ...base, image: { ...pinFields(pin), id: image.Id }, imageHealthcheck: imageHasHealthcheck(image), source: local ? "local" : "pulled" };
}

function pinFields(pin: ImagePin): Omit<DockerPhaseState["image"], "id"> {
  return { component: pin.component, repository: pin.repository, digest: pin.digest, ref: pin.ref };
}

/**
 * The image the engine holds under exactly repository@digest, or undefined when it has none (then it is pulled).
 * Anything unexpected here also means "pull": the pull and the verify after it report such failures properly.
 */
export async function localImage(docker: EngineClient, pin: ImagePin): Promise<ImageInspect | undefined> {
  try {
    const image = await docker.getImage(pin.ref).inspect();
    return (image.RepoDigests ?? []).includes(pin.ref) ? image : undefined;
  } catch (err) {
    if (isEngineUnreachable(err)) throw err;
    return undefined;
  }
}

export async function pulledImage(docker: EngineClient, pin: ImagePin): Promise<ImageInspect> {
  try {
    return await docker.getImage(pin.ref).inspect();
  } catch (err) {
    if (isEngineUnreachable(err)) throw err;
    throw dockerError("DIGEST_MISMATCH", `after the pull the engine has no image ${pin.ref}: ${engineMessage(err)}`, { image: pin.ref, error: engineMessage(err) });
  }
}

export function checkRepoDigests(image: ImageInspect, pin: ImagePin, what: "pulled" | "local", log: (line: string) => void): ImageInspect {
  // The engine resolves repository@digest through its own reference store; the image it finds must say it came from
  // exactly that repository and digest.
  const repoDigests = image.RepoDigests ?? [];
  if (!repoDigests.includes(pin.ref)) {
    throw dockerError("DIGEST_MISMATCH", `the ${what} image ${image.Id} does not carry ${pin.ref} (it carries ${repoDigests.join(", ") || "no repository digest"})`, {
      image: pin.ref,
      imageId: image.Id,
      repoDigests,
    });
  }
  log(`prepare: verified: image ${image.Id.slice(7, 19)} carries ${pin.ref}`);
  return image;
}
