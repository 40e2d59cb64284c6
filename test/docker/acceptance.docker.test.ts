/**
 * The acceptance checks CAT 0.11.5 lacks (test/docker/acceptance.ts), one jest test per check:
 * `npm run test:acceptance:extra` runs them against the image (connector_image, or
 * ACCEPTANCE_IMAGE); ACCEPTANCE_TARGET=local runs them against the built CLI.
 * `npm run test:acceptance` runs Airbyte's CAT 0.11.5 first, then these.
 */
import { AcceptanceContext, connectorFromEnv, loadMetadata, loadTestConfig, planAcceptance, startAcceptanceMock, type AcceptanceMock } from './acceptance.js';

const cfg = loadTestConfig();
const connector = connectorFromEnv(cfg);
const plan = planAcceptance(cfg, loadMetadata());
let mock: AcceptanceMock;
let ctx: AcceptanceContext;

beforeAll(async () => {
  mock = await startAcceptanceMock();
  ctx = new AcceptanceContext(connector, mock, cfg);
  if (connector.kind === 'image') await connector.inspect(); // fails early, saying how to build it
});

afterAll(async () => {
  await mock?.close();
});

describe(`acceptance tests against ${connector.name}`, () => {
  for (const suite of ['config', 'spec', 'connection', 'discovery', 'basic_read', 'full_refresh', 'incremental'] as const) {
    const checks = plan.filter((c) => c.suite === suite);
    if (!checks.length) continue;
    describe(suite, () => {
      for (const check of checks) {
        test(check.name, async () => {
          const r = await check.run(ctx);
          if (r.skipped) console.info(`skipped: ${check.name}: ${r.skipped}`);
          if (r.warnings?.length) console.info(`${check.name}:\n  ${r.warnings.join('\n  ')}`);
          expect(r.problems).toEqual([]);
        });
      }
    });
  }
});
