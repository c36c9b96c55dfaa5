/**
 * The Tagflow worker agent. Until the agent lands, this entry point says so plainly
 * instead of pretending to work.
 */
process.stderr.write('tagflow-worker: the worker agent is not built yet; talk to the API over HTTP (see README, "Worker protocol").\n');
process.exit(2);
