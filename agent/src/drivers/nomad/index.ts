// The Nomad target driver (docs/drivers/nomad.md) and how it joins the agent. The driver's code is imported only when
// drivers.nomad is enabled.
import { nomadKind, type ObjectSchema } from "@ferry/contract";

import type { DriverRegistration } from "../driver.js";

const absolute = { type: "string", maxLength: 4096, pattern: /^\//, hint: "must be an absolute path" } as const;

/** The agent config's `drivers.nomad` section: where the API is, and the agent's credentials for it. */
export const nomadSettings: ObjectSchema = {
  fields: {
    address: { type: "string", maxLength: 2048, pattern: /^https?:\/\/\S+$/, hint: "must be an http(s) URL", doc: "the Nomad HTTP API for targets whose config names none; default NOMAD_ADDR, else http://127.0.0.1:4646" },
    tokenFile: { ...absolute, doc: "a file holding the ACL token (its secret id), read at each call so a rotated token is picked up; default NOMAD_TOKEN" },
    caFile: { ...absolute, doc: "PEM CA bundle the API's certificate must chain to (https); default NOMAD_CACERT, else the system's" },
    clientCertFile: { ...absolute, doc: "PEM client certificate for mTLS; default NOMAD_CLIENT_CERT" },
    clientKeyFile: { ...absolute, doc: "PEM key of the client certificate; default NOMAD_CLIENT_KEY" },
    tlsServerName: { type: "string", maxLength: 253, doc: "the name the API's certificate is checked against, when it differs from the address's host; default NOMAD_TLS_SERVER_NAME" },
    blockingWaitSeconds: { type: "integer", min: 1, max: 300, doc: "how long one blocking query waits for a change; default 30" },
  },
};


export const nomadRegistration: DriverRegistration = {
  descriptor: nomadKind,
  settings: nomadSettings,
  enabledByDefault: false,
  async create({ logger, settings }) {
    const { NomadDriver } = await import("./nomad-driver.js");
    return new NomadDriver({ logger, settings: settings });
  },
};

export type { NomadPhaseState } from "./phase-state.js";
export type { NomadSettings } from "./nomad-api.js";
