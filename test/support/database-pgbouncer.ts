// Project e2e-pgbouncer (jest.config.mjs): PostgreSQL through the run's PgBouncer (transaction
// pooling); each suite's database is still made on the server itself (TEST_PG_DIRECT_URL).
if (!process.env.TEST_PGBOUNCER_URL)
  throw new Error('TEST_PGBOUNCER_URL is not set: run the suites through `npm test`');
process.env.TEST_DATABASE = 'postgres';
process.env.TEST_PG_DIRECT_URL = process.env.TEST_PG_SERVER_URL;
process.env.TEST_PG_URL = process.env.TEST_PGBOUNCER_URL;
