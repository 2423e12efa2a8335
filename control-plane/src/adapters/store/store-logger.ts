// The logger the store adapters accept: the subset of pino's Logger they use, so a pino logger (or a child of one)
// can be passed straight in and tests can capture lines with a plain object.

export interface StoreLogger {
  warn(obj: Record<string, unknown>, msg: string): void;
  info?(obj: Record<string, unknown>, msg: string): void;
}

export const silentLogger: StoreLogger = { warn: () => {} };
