// Every driver this agent build can load: one registration line per target kind. A registration's code is loaded
// only when the agent creates the driver (see main.ts defaultDrivers), so kinds an agent does not serve cost nothing.
import type { DriverRegistration } from "./driver.js";
import { composeRegistration } from "./compose/index.js";
import { dockerRegistration } from "./docker/index.js";
import { ecsRegistration } from "./ecs/index.js";
import { nomadRegistration } from "./nomad/index.js";
import { sshRegistration } from "./ssh/index.js";
import { winrmRegistration } from "./winrm/index.js";

export const DRIVER_REGISTRATIONS: readonly DriverRegistration[] = [dockerRegistration, composeRegistration, ecsRegistration, nomadRegistration, sshRegistration, winrmRegistration];
