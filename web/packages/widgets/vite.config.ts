import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

const external = ["react", "react-dom", "react/jsx-runtime", "@orgmail/client"];

export default defineConfig({
  plugins: [react()],
  build: {
    lib: { entry: "src/index.ts", formats: ["es"], fileName: "index" },
    sourcemap: true,
    emptyOutDir: true,
    rollupOptions: { external },
  },
  test: {
    environment: "jsdom",
    setupFiles: ["test/setup.ts"],
    // userEvent types key by key: a file's first test takes seconds on a busy 2-core machine.
    testTimeout: 15_000,
    // Tests run against the client's sources, so they need no build first.
    alias: { "@orgmail/client": fileURLToPath(new URL("../client/src/index.ts", import.meta.url)) },
  },
});
