import { defineConfig } from 'vitest/config';

// Three projects so a developer can run the fast ones alone. Integration and e2e tests
// boot real QEMU, so they run one file at a time on a 2-core machine.
const json = process.env.STACKLAB_TEST_JSON;

export default defineConfig({
  test: {
    // CI reads the counts from the JSON report; people read the default one.
    reporters: json ? ['default', ['json', { outputFile: json }]] : ['default'],
    // Integration and e2e files boot real QEMU: one file at a time on a 2-core machine.
    fileParallelism: false,
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 20_000 } },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 240_000,
          hookTimeout: 240_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
