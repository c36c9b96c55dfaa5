// Project e2e-postgres (jest.config.mjs): the suites of this file run on PostgreSQL, directly.
process.env.TEST_DATABASE = 'postgres';
if (process.env.TEST_PG_SERVER_URL) process.env.TEST_PG_URL = process.env.TEST_PG_SERVER_URL;
delete process.env.TEST_PG_DIRECT_URL;
