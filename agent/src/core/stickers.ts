// Version stickers: one file per target under <state>/stickers/, written atomically (temp file, fsync, rename,
// fsync the directory), saying what Ferry last deployed there. The agent reports them, together with what it
// observed running on each target, so the control plane knows what runs where and can flag drift.
import { promises as fs } from "node:fs";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { StickerImageSchema, StickerSchema, type Sticker } from "@ferry/proto/wire";
import { writeFileAtomic } from "@ferry/pki";

export const STICKER_DIR = "stickers";

export interface StickerFile {
  version: 1;
  targetId: string;
  targetName: string;
  targetKind: string;
  release: { id: string; name: string; version: string };
  images: { component: string; repository: string; digest: string }[];
  deploymentId: string;
  taskId: string;
  action: string;
  writtenAt: string;
  agentId: string;
  /** The target's config as the task carried it, so drift can still be observed after the journal forgets the task. */
  targetConfig?: Record<string, unknown>;
}

export interface Observation {
  state: string;
  /** component → running digest ("" when nothing runs). */
  running: Record<string, string>;
  at: number;
}

const SAFE = /^[A-Za-z0-9_.-]{1,128}$/;

export class StickerStore {
  readonly #dir: string;
  readonly #stickers = new Map<string, StickerFile>();

  private constructor(dir: string) {
    this.#dir = dir;
  }

  static async open(stateDir: string): Promise<StickerStore> {
    const dir = path.join(stateDir, STICKER_DIR);
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const store = new StickerStore(dir);
    for (const name of await fs.readdir(dir)) {
      if (!name.endsWith(".json")) continue;
      try {
        const v = JSON.parse(await fs.readFile(path.join(dir, name), "utf8")) as StickerFile;
        if (v.version === 1 && typeof v.targetId === "string") store.#stickers.set(v.targetId, v);
      } catch {
        // A torn file cannot happen (atomic writes); an unreadable one is left for the operator and not reported.
      }
    }
    return store;
  }

  get dir(): string {
    return this.#dir;
  }

  file(targetId: string): string {
    if (!SAFE.test(targetId)) throw new Error(`unsafe target id ${JSON.stringify(targetId)}`);
    return path.join(this.#dir, `${targetId}.json`);
  }

  async write(sticker: StickerFile): Promise<void> {
    await writeFileAtomic(this.file(sticker.targetId), `${JSON.stringify(sticker, null, 2)}\n`, 0o644);
    this.#stickers.set(sticker.targetId, sticker);
  }

  get(targetId: string): StickerFile | undefined {
    return this.#stickers.get(targetId);
  }

  all(): StickerFile[] {
    // Code-unit order, not localeCompare: target ids are ASCII, and a collator would make ICU's data resident.
    return [...this.#stickers.values()].sort((a, b) => (a.targetId < b.targetId ? -1 : a.targetId > b.targetId ? 1 : 0));
  }
}

/** The wire form of a sticker with what was observed on the target. */
export function stickerMessage(s: StickerFile, observed: Observation | undefined): Sticker {
  return create(StickerSchema, {
    targetId: s.targetId,
    targetName: s.targetName,
    releaseId: s.release.id,
    releaseName: s.release.name,
    releaseVersion: s.release.version,
    deploymentId: s.deploymentId,
    taskId: s.taskId,
    writtenAtMs: BigInt(Date.parse(s.writtenAt) || 0),
    agentId: s.agentId,
    images: s.images.map((i) =>
      create(StickerImageSchema, { component: i.component, repository: i.repository, digest: i.digest, runningDigest: observed?.running[i.component] ?? "" }),
    ),
    observedAtMs: BigInt(observed?.at ?? 0),
    observedState: observed?.state ?? "unknown",
  });
}
