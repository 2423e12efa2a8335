// The in-memory fake driver for agent-core tests (docs/drivers/README.md).
export { FakeDriver, fakeKind, fakeRegistration, type FakeScript, type FakeSlot, type FakeTargetConfig } from "./fake-driver.js";
