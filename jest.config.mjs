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

export default {
  // End-to-end tests wait for real processes; each wait inside has its own deadline.
  testTimeout: 60_000,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/libs/**/*.spec.ts', '<rootDir>/apps/**/*.spec.ts'] },
    {
      ...common,
      displayName: 'e2e',
      testMatch: ['<rootDir>/test/**/*.e2e-spec.ts'],
      setupFilesAfterEnv: ['<rootDir>/test/support/teardown.ts'],
      slowTestThreshold: 30,
    },
  ],
};
