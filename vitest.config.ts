import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The single executable's own tests run after `npm run package` (npm run test:executable).
    exclude: ['**/node_modules/**', 'test/executable/**'],
    // The SDK in debug mode always dials port 49983, so integration files run one at a time.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
