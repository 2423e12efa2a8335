// ssh: a host reached over SSH from a gateway agent (Docker over SSH, or a script). No driver ships yet.
import { singleImage, type TargetKindDescriptor } from "../target-kind.js";
import { absolutePath, HOST_PATTERN } from "./common.js";

export interface SshTargetConfig {
  host: string;
  port?: number;
  user: string;
  credentialsRef?: string;
  stickerPath?: string;
  deployScript?: string;
}

export const sshKind: TargetKindDescriptor<SshTargetConfig> = {
  kind: "ssh",
  title: "a host reached over SSH",
  config: {
    fields: {
      host: { type: "string", required: true, maxLength: 253, pattern: HOST_PATTERN, hint: "must be a host name or IP address" },
      port: { type: "integer", min: 1, max: 65535 },
      user: { type: "string", required: true, maxLength: 64 },
      credentialsRef: { type: "string", maxLength: 128 },
      stickerPath: absolutePath,
      deployScript: { type: "string", maxLength: 65_536 },
    },
  },
  capabilities: [],
  sticker: "a sticker file on the host",
  placement: "gateway",
  typed: (c) => c as unknown as SshTargetConfig,
  imagesFor: (_config, pins) => singleImage(undefined, pins),
};
