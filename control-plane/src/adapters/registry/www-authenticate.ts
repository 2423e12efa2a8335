// Parses WWW-Authenticate (RFC 9110 §11.6.1): one or more challenges, each a scheme followed by comma-separated
// auth-params whose values are tokens or quoted strings. Registries send e.g.
//   Bearer realm="https://auth.example/token",service="registry.example",scope="repository:team/web:pull"
// and a quoted value may itself contain commas ("repository:a:pull,push") and escaped quotes, so splitting on
// commas or using a regular expression per parameter is wrong. Several challenges may share one header
// ("Bearer realm=…, Basic realm=…"): a token followed by "=" continues the current challenge, any other token starts
// the next one.

export interface Challenge {
  /** Lowercased scheme, e.g. "bearer", "basic". */
  scheme: string;
  /** Parameters by lowercased name; values unquoted and unescaped. */
  params: Record<string, string>;
}

// RFC 9110 tchar.
const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

export class ChallengeParseError extends Error {
  override readonly name = "ChallengeParseError";
}

export function parseWwwAuthenticate(header: string): Challenge[] {
  const s = header;
  let i = 0;
  const challenges: Challenge[] = [];
  let current: Challenge | null = null;

  const skipWs = () => {
    while (i < s.length && (s[i] === " " || s[i] === "\t")) i++;
  };
  const token = () => {
    const start = i;
    while (i < s.length && TCHAR.test(s[i] ?? "")) i++;
    return s.slice(start, i);
  };
  const quoted = () => {
    // Caller has seen the opening quote.
    i++;
    let out = "";
    while (i < s.length) {
      const c = s[i] ?? "";
      if (c === "\\") {
        if (i + 1 >= s.length) break;
        out += s[i + 1];
        i += 2;
        continue;
      }
      if (c === '"') {
        i++;
        return out;
      }
      out += c;
      i++;
    }
    throw new ChallengeParseError("unterminated quoted string");
  };

  // Bounded: every iteration consumes at least one character or throws.
  while (i < s.length) {
    while (i < s.length && (s[i] === " " || s[i] === "\t" || s[i] === ",")) i++;
    if (i >= s.length) break;
    const name = token();
    if (name === "") throw new ChallengeParseError(`unexpected character ${JSON.stringify(s[i])} at ${i}`);
    skipWs();
    if (current !== null && s[i] === "=") {
      i++;
      skipWs();
      const value = s[i] === '"' ? quoted() : token();
      current.params[name.toLowerCase()] = value;
      skipWs();
      if (i < s.length && s[i] !== ",") throw new ChallengeParseError(`expected "," after parameter ${name} at ${i}`);
      continue;
    }
    current = { scheme: name.toLowerCase(), params: {} };
    challenges.push(current);
    // token68 (e.g. "Negotiate abc==") is not used by registries; skip it rather than misread it as a parameter.
    const save = i;
    const t68 = /^[A-Za-z0-9\-._~+/]+=*\s*(?:,|$)/.exec(s.slice(i));
    if (t68 && !/^[A-Za-z0-9\-._~+/]+\s*=\s*[^=\s,]/.test(s.slice(i))) i = save + t68[0].length;
  }
  return challenges;
}
