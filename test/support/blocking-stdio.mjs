// Preloaded into every test process (scripts/test.sh). With --test-force-exit, Node 20 exits a test
// file's process while the last results are still buffered in its stdout pipe to the runner: they
// are lost, and the run still passes with fewer tests (nodejs/node#64833; seen here as 544 of 554).
// Blocking writes on the pipe keep every result. `--test-force-exit` itself stays: without it, one
// handle left open by a test kept a run alive for 50 minutes.
for (const stream of [process.stdout, process.stderr]) stream._handle?.setBlocking?.(true);
