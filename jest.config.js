// ESM throughout (node-fetch 3 is ESM-only): ts-jest's ESM preset, run under
// node --experimental-vm-modules (see package.json "test").
export default {
  preset: 'ts-jest/presets/default-esm',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // Docker tests need an engine: `npm run test:docker` runs them (CI starts the engine first).
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/docker/'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.test.json' }] },
  testTimeout: 120000,
  // Tests spawn the built CLI; several mock servers per file are fine on 2 cores.
  maxWorkers: 2,
};
