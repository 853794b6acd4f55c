import { defineConfig } from "vitest/config";

// The browser tests: a real orgmail service, a real SMTP relay and Debian's chromium, one file at a time.
export default defineConfig({
  test: {
    include: ["e2e/**/*.e2e.test.ts"],
    environment: "node",
    testTimeout: 60_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
