import { afterAll } from '@jest/globals';
import { checkRecordedAnswers, killTracked } from './harness.js';

// After each e2e file: whatever its tests started and did not stop (a test that failed
// half-way) is killed, so no API or worker outlives its suite; then every answer its APIs
// sent is checked against the OpenAPI document.
afterAll(() => {
  killTracked();
  checkRecordedAnswers();
});
