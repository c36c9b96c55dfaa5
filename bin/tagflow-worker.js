#!/usr/bin/env node
// The `tagflow-worker` command: the built worker agent.
import '../dist/apps/worker/main.js';
