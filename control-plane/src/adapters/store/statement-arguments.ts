// The parameters a prepared statement (the port's PreparedStatement) accepts, checked alike on both adapters: the
// embedded one writes them into EXECUTE as literals (pglite.ts), the PostgreSQL one binds them (pg.ts) and checks
// them only so that a statement that works on one backend works on the other.

/**
 * A prepared statement's parameter as an SQL literal of unknown type, which PostgreSQL reads with the parameter's
 * input function: the text PGlite itself would send for it. Strings are quoted with their quotes doubled, which is
 * all a standard-conforming string needs (standard_conforming_strings is on, PostgreSQL's default).
 */
export function statementArgument(value: unknown): string {
  if (value === null || value === undefined) return "NULL";
  let text: string;
  if (typeof value === "string") text = value;
  else if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`a prepared statement's parameter must be a finite number, not ${value}`);
    text = String(value);
  } else if (typeof value === "bigint") text = value.toString();
  else if (typeof value === "boolean") text = value ? "t" : "f";
  else if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw new TypeError("a prepared statement's parameter is an invalid Date");
    text = value.toISOString();
  } else throw new TypeError(`a prepared statement's parameter must be a string, number, bigint, boolean, Date or null, not ${Array.isArray(value) ? "an array" : typeof value}`);
  if (text.includes("\0")) throw new TypeError("a prepared statement's parameter cannot hold a NUL character");
  return `'${text.replaceAll("'", "''")}'`;
}

/** Refuses what statementArgument refuses; for the adapter that binds parameters itself. */
export function checkStatementArguments(params: readonly unknown[] | undefined): void {
  for (const p of params ?? []) statementArgument(p);
}
