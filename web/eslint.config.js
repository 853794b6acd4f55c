// `npm run lint`: typescript-eslint's and react-hooks' recommended rules (the React Compiler's checks,
// such as react-hooks/refs, among them). Inline `eslint-disable` comments have no effect and are
// reported: a finding is fixed in the code.
import js from "@eslint/js";
import reactHooks from "eslint-plugin-react-hooks";
import { defineConfig, globalIgnores } from "eslint/config";
import globals from "globals";
import tseslint from "typescript-eslint";

export default defineConfig([
  globalIgnores(["**/dist/", "packages/client/src/openapi.ts"]),
  js.configs.recommended,
  tseslint.configs.recommended,
  reactHooks.configs.flat.recommended,
  { linterOptions: { noInlineConfig: true } },
  // TypeScript checks names in .ts files; the plain JS files (this one, scripts/) run on Node.
  { files: ["**/*.{js,mjs}"], languageOptions: { globals: globals.node } },
]);
