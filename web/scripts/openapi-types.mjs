// Generates packages/client/src/openapi.ts from the Python app's OpenAPI document (--write), or fails
// when the checked-in file differs from what the current app would generate (--check, run by make test).
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";

const web = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const target = resolve(web, "packages/client/src/openapi.ts");
const python = process.env.ORGMAIL_PYTHON ?? resolve(web, "../.venv/bin/python");
const mode = process.argv[2];
if (mode !== "--write" && mode !== "--check") {
  console.error("usage: openapi-types.mjs --write | --check");
  process.exit(2);
}

const document = JSON.parse(
  execFileSync(python, [resolve(web, "scripts/dump_openapi.py")], { encoding: "utf8", maxBuffer: 64 << 20 }),
);
const header =
  "// Generated from the orgmail service's OpenAPI document by web/scripts/openapi-types.mjs.\n" +
  "// Do not edit: run `npm run types:generate` in web/ (or `make web-types`) after changing the API.\n\n";
// defaultNonNullable: false keeps fields with a server-side default optional in request bodies.
const generated = header + astToString(await openapiTS(document, { alphabetize: true, defaultNonNullable: false }));

if (mode === "--write") {
  writeFileSync(target, generated);
  console.log(`wrote ${target}`);
} else {
  let current = "";
  try {
    current = readFileSync(target, "utf8");
  } catch {
    /* missing counts as out of date */
  }
  if (current !== generated) {
    console.error(
      "packages/client/src/openapi.ts is out of date with the service's OpenAPI document.\n" +
        "Run `make web-types` (or `npm run types:generate` in web/) and commit the result.",
    );
    process.exit(1);
  }
  console.log("generated client types are up to date");
}
