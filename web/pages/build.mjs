// Bundles the pages' scripts (with the SDK) into web/dist, beside a copy of their styles.
// `npm run build` in web/ runs it after checking the types; scripts/setup.sh runs that.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "..", "dist");
mkdirSync(dist, { recursive: true });
await build({
  entryPoints: { viewer: join(here, "src", "viewer.ts"), dashboard: join(here, "src", "dashboard.ts") },
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: true,
  outdir: dist,
  logLevel: "warning",
});
for (const css of ["viewer.css", "dashboard.css"]) copyFileSync(join(here, css), join(dist, css));
console.log(`built the pages into ${dist}`);
