// The Docker tests (test/docker/): `npm run test:docker` (the image's contract) and
// `npm run test:acceptance:extra` (the acceptance checks newer CATs make and CAT 0.11.5 does not,
// driven by acceptance-test-config.yml; `npm run test:acceptance` runs CAT 0.11.5 first).
// They need a Docker engine and the built image (`npm run docker:build`); CI starts the engine
// when none answers. `ACCEPTANCE_TARGET=local npm run test:acceptance:extra` runs those checks
// against dist/cli/airbyte.js instead, without Docker.
import base from './jest.config.js';

export default {
  ...base,
  roots: ['<rootDir>/test/docker'],
  testMatch: ['**/*.docker.test.ts'],
  testPathIgnorePatterns: ['/node_modules/'],
  testTimeout: 600000,
  // Containers are heavier than processes; the two files may still run side by side.
  maxWorkers: 2,
};
