// LISTEN/NOTIFY channel names, shared by both adapters.
//
// LISTEN takes an identifier, not a parameter, so the name is spliced into SQL: it must be validated, and it is
// double-quoted so that the name LISTENed is exactly the string pg_notify($1, …) is called with. Names are limited
// to lower-case identifiers because PGlite folds the name to lower case in its own bookkeeping (unlisten issues an
// unquoted UNLISTEN), so a mixed-case name would listen on one channel and unlisten from another.

const CHANNEL_RE = /^[a-z_][a-z0-9_]{0,62}$/;

export function checkChannel(channel: string): string {
  if (!CHANNEL_RE.test(channel)) {
    throw new TypeError(`invalid channel name ${JSON.stringify(channel)}: use 1-63 characters of [a-z0-9_], not starting with a digit`);
  }
  return channel;
}

/** The channel as a quoted identifier; only call with a name that passed checkChannel. */
export function quoteChannel(channel: string): string {
  return `"${checkChannel(channel)}"`;
}
