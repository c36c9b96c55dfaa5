// Preloaded (NODE_OPTIONS=--require) into an API process a test wants on a host whose
// clock is off: Date.now() runs TEST_CLOCK_SKEW_MS ahead (behind, when negative).
const skew = Number(process.env.TEST_CLOCK_SKEW_MS || 0);
const realNow = Date.now;
Date.now = () => realNow() + skew;
