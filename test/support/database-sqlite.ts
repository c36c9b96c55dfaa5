// Project e2e-sqlite (jest.config.mjs): the suites of this file run on SQLite.
process.env.TEST_DATABASE = 'sqlite';
