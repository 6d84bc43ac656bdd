/**
 * Checks a TAP report of `node --test` (scripts/run-tests.sh) for tests that started and never reported
 * a verdict: a test file's process that ended early (killed, exited, or its last verdicts lost on the
 * way to the runner) would otherwise pass unseen. Prints each such test and exits 1. It sees a cut
 * inside a suite or test (its start arrived, its verdict did not); a cut between two top-level tests
 * leaves no trace here, which is why scripts/lib/blocking-stdio.mjs keeps verdicts from being lost.
 *
 * Written by hand: it is a dozen lines over the TAP the runner prints, which no reporter checks.
 */
import { readFileSync } from 'node:fs';

const [file] = process.argv.slice(2);
if (!file) {
  console.error('usage: check-test-report <tap-file>');
  process.exit(2);
}
const started: string[] = [];
const verdicts = new Map<string, number>();
for (const line of readFileSync(file, 'utf8').split('\n')) {
  const subtest = /^(\s*)# Subtest: (.*)$/.exec(line);
  if (subtest) {
    started.push(`${subtest[1]!.length}|${subtest[2]}`);
    continue;
  }
  // "ok 3 - name # SKIP why": TAP escapes a '#' inside a name, so " # " starts a directive.
  const verdict = /^(\s*)(?:not )?ok \d+ - (.*?)(?: # (?:SKIP|TODO)\b.*)?$/.exec(line);
  if (verdict) {
    const key = `${verdict[1]!.length}|${verdict[2]}`;
    verdicts.set(key, (verdicts.get(key) ?? 0) + 1);
  }
}
const missing: string[] = [];
for (const key of started) {
  const left = verdicts.get(key) ?? 0;
  if (left > 0) verdicts.set(key, left - 1);
  else missing.push(key.slice(key.indexOf('|') + 1));
}
if (missing.length > 0) {
  console.error(`test report: ${missing.length} test(s) started without a verdict (their process ended early or its report was cut):`);
  for (const name of missing) console.error(`  - ${name}`);
  process.exit(1);
}
console.error(`test report: every one of ${started.length} started tests and suites has a verdict`);
