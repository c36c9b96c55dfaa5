import { afterAll } from '@jest/globals';
import { killTracked } from './harness.js';

// After each e2e file: whatever its tests started and did not stop (a test that failed
// half-way) is killed, so no API or worker outlives its suite.
afterAll(() => killTracked());
