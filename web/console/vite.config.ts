import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// Built into the Python package, which serves it at /console (src/orgmail/app.py).
export default defineConfig({
  plugins: [react()],
  base: "/console/",
  build: {
    outDir: fileURLToPath(new URL("../../src/orgmail/console", import.meta.url)),
    emptyOutDir: true,
  },
  server: {
    // `npm run dev` in web/console: the service on its default port answers the API calls.
    proxy: { "/v1": "http://127.0.0.1:8025" },
  },
});
