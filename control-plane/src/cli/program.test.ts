// The CLI's promises that hold for every command: each subcommand accepts --json (README: "human and --json
// output"); reject/approve decisions read as words; and text from agents and users reaches the terminal with its
// control characters escaped, in tables, messages and logs alike.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Command } from "commander";
import { out, outJson, safe, safeJson, table, terminal } from "./format.js";

/** Any character a terminal would act on (what safe() must leave none of). */
const raw = (s: string) => [...s].some((c) => {
  const n = c.charCodeAt(0);
  return (n < 0x20 && c !== "\n" && c !== "\t") || (n >= 0x7f && n <= 0x9f) || c === "\u202e";
});
import { buildProgram } from "./program.js";
import { pastTense } from "./promotion-commands.js";

function leaves(cmd: Command, path: string[] = []): { path: string; cmd: Command }[] {
  if (cmd.commands.length === 0) return [{ path: path.join(" "), cmd }];
  return cmd.commands.flatMap((c) => leaves(c, [...path, c.name()]));
}

describe("ferry CLI", () => {
  it("accepts --json on every subcommand", () => {
    const all = leaves(buildProgram());
    assert.ok(all.length > 40, `walked ${all.length} subcommands`);
    const missing = all.filter(({ cmd }) => {
      const parsed = cmd.parseOptions(["--json"]);
      return parsed.unknown.includes("--json") || !cmd.options.some((o) => o.long === "--json");
    });
    assert.deepEqual(missing.map((m) => m.path), []);
  });

  it("says approved and rejected", () => {
    assert.equal(pastTense("approve"), "approved");
    assert.equal(pastTense("reject"), "rejected");
  });

  it("escapes control characters from agents and users in text, tables and JSON", () => {
    const evil = "web\x1b]0;owned\x07\x1b[2J\r\u009b31m\u202eexe.txt";
    assert.equal(safe(evil), "web\\x1b]0;owned\\x07\\x1b[2J\\x0d\\x9b31m\\u202eexe.txt");
    assert.equal(safe("two\nlines\tand a tab"), "two\nlines\tand a tab");
    const t = table(["NAME", "HOST"], [[evil, "h"]]);
    assert.ok(!raw(t), t);
    assert.match(t.split("\n")[1]!, /h$/, "columns still line up after escaping");
    const json = safeJson(JSON.stringify({ name: evil }));
    assert.deepEqual(JSON.parse(json), { name: evil }, "JSON output reads back unchanged");
    assert.ok(!raw(json));
  });

  it("escapes human output whatever it starts with, and keeps JSON output parseable", () => {
    const saved = { ...terminal };
    let written = "";
    terminal.out = (t) => void (written += t);
    try {
      out("[PASSED] gate\x1b[2J");
      outJson({ name: "a\x1b\u009bb" });
    } finally {
      Object.assign(terminal, saved);
    }
    const [human, ...json] = written.split("\n");
    assert.equal(human, "[PASSED] gate\\x1b[2J");
    assert.deepEqual(JSON.parse(json.join("\n")), { name: "a\x1b\u009bb" });
    assert.ok(!raw(written.replace(/\n/g, "")));
  });
});
