#!/usr/bin/env node
// The `tagflow` command line: workflows from files, what runs, live output.
import '../dist/apps/cli/main.js';
