// PowerShell single-quoted strings: nothing inside is expanded; a quote is written twice.
export function psQuote(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}
