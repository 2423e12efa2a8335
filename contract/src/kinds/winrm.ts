// winrm: a Windows host reached over WS-Management from a gateway agent. No driver ships yet.
import { singleImage, type TargetKindDescriptor } from "../target-kind.js";
import { HOST_PATTERN } from "./common.js";

export interface WinrmTargetConfig {
  host: string;
  port?: number;
  user: string;
  transport?: "https" | "http";
  credentialsRef?: string;
  stickerPath?: string;
}

export const winrmKind: TargetKindDescriptor<WinrmTargetConfig> = {
  kind: "winrm",
  title: "a Windows host reached over WinRM",
  config: {
    fields: {
      host: { type: "string", required: true, maxLength: 253, pattern: HOST_PATTERN, hint: "must be a host name or IP address" },
      port: { type: "integer", min: 1, max: 65535 },
      user: { type: "string", required: true, maxLength: 128 },
      transport: { type: "string", enum: ["https", "http"] },
      credentialsRef: { type: "string", maxLength: 128 },
      stickerPath: { type: "string", maxLength: 1024 },
    },
  },
  capabilities: [],
  sticker: "a sticker file on the host",
  placement: "gateway",
  typed: (c) => c as unknown as WinrmTargetConfig,
  imagesFor: (_config, pins) => singleImage(undefined, pins),
};
