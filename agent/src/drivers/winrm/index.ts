// The winrm target driver (docs/drivers/winrm.md) and how it joins the agent; its code is imported only when the
// agent creates the driver.
import { winrmKind, type ObjectSchema } from "@ferry/contract";

import type { DriverRegistration } from "../driver.js";

const absolute = { type: "string", maxLength: 4096, pattern: /^\//, hint: "must be an absolute path" } as const;

/** The agent config's `drivers.winrm` section. Passwords live in the credentials file, never in a target's config. */
export const winrmSettings: ObjectSchema = {
  fields: {
    credentialsFile: { ...absolute, doc: 'JSON {"<credentialsRef>": {"username": "DOMAIN\\\\user", "password": "…"}}, mode 0600; read at every connection, so rewriting it rotates credentials' },
    caFile: { ...absolute, doc: "PEM CA bundle the hosts' WinRM HTTPS certificates chain to; default the system's CAs" },
  },
};

export const winrmRegistration: DriverRegistration = {
  descriptor: winrmKind,
  settings: winrmSettings,
  enabledByDefault: false,
  async create({ settings }) {
    const { WinrmDriver } = await import("./winrm-driver.js");
    return new WinrmDriver({ settings });
  },
};
