// Preloaded into the test runner and every test file's process (scripts/run-tests.sh). With
// --test-force-exit, Node (20, and 26 as of nodejs/node#64833) exits a test file's process while the
// last verdicts still sit in its non-blocking stdout pipe to the runner: they are lost and the run still
// passes (seen here: the last tests of a file missing from a green CI run). Blocking writes leave nothing
// buffered at exit. Delete this once the runner flushes by itself (the fix lands in a release).
import process from 'node:process';

for (const stream of [process.stdout, process.stderr]) stream._handle?.setBlocking?.(true);
