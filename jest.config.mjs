// Jest runs in ESM mode (Nest 12 and our sources are ESM); see package.json scripts.
const tsJest = ['ts-jest', { useESM: true, tsconfig: 'tsconfig.spec.json' }];
const common = {
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': tsJest },
  moduleNameMapper: {
    '^@tagflow/(domain|persistence|queue|client|spec)$': '<rootDir>/libs/$1/src/index.ts',
    '^@tagflow/domain/(.*)\\.js$': '<rootDir>/libs/domain/src/$1.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  testEnvironment: 'node',
};

// Where each end-to-end suite runs (scripts/test.sh chooses the projects):
// - suites that do not depend on the database run once, on the run's first database
//   (TEST_DB_FREE_ON, default sqlite);
// - suites that need PostgreSQL (several API processes on one database; restarting it) run
//   only there;
// - suites that act on the whole machine (killing every process of a user) run alone, after
//   the others (project e2e-alone);
// - a full run also takes the core suites through PgBouncer in transaction pooling mode.
export const DB_FREE = 'test/(ui|worker|worker-isolation|worker-keys|cli|client|examples|queue|operations)\\.e2e';
export const PG_ONLY = 'test/(replicas|scale-out|startup|pooling|postgres-restart|redis-failover)\\.e2e';
export const ALONE = 'test/worker-isolation\\.e2e';
export const PGBOUNCER_CORE = 'test/(api|dataflow|failures|control|dispatch|startup|pooling)\\.e2e';
const dbFreeOn = process.env.TEST_DB_FREE_ON ?? 'sqlite';

/** One e2e project: its suites see TEST_DATABASE (and for PgBouncer, its URL) set by `setup`. */
const e2e = (name, setup, { ignore = [], only } = {}) => ({
  ...common,
  displayName: name,
  ...(only ? { testRegex: [`${only}-spec\\.ts$`] } : { testMatch: ['<rootDir>/test/**/*.e2e-spec.ts'] }),
  testPathIgnorePatterns: ['/node_modules/', ...ignore],
  setupFiles: [`<rootDir>/test/support/database-${setup}.ts`],
  setupFilesAfterEnv: ['<rootDir>/test/support/teardown.ts'],
  slowTestThreshold: 30,
});

export default {
  // End-to-end tests wait for real processes; each wait inside has its own deadline.
  testTimeout: 60_000,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/libs/**/*.spec.ts', '<rootDir>/apps/**/*.spec.ts'] },
    e2e('e2e-sqlite', 'sqlite', { ignore: [PG_ONLY, ALONE, ...(dbFreeOn === 'sqlite' ? [] : [DB_FREE])] }),
    e2e('e2e-postgres', 'postgres', { ignore: [ALONE, ...(dbFreeOn === 'postgres' ? [] : [DB_FREE])] }),
    // TEST_PGBOUNCER_ANY=1 (npm test -- --pgbouncer NAME...): any suite that uses the database, through PgBouncer.
    e2e(
      'e2e-pgbouncer',
      'pgbouncer',
      process.env.TEST_PGBOUNCER_ANY ? { ignore: [DB_FREE, ALONE] } : { only: PGBOUNCER_CORE },
    ),
    e2e('e2e-alone', dbFreeOn, { only: ALONE }),
  ],
};
