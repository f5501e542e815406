// Bundles the browser code (src/*.js and its npm libraries) into taskhold/web/static/dist, where
// `taskhold serve` serves it. Run by scripts/build-web; the output is built, never committed.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.join(here, "..", "taskhold", "web", "static", "dist");

await build({
  entryPoints: {
    board: path.join(here, "src", "board.js"),
    explorer: path.join(here, "src", "explorer.js"),
  },
  bundle: true,
  format: "esm",
  target: ["chrome110", "firefox110", "safari16"],
  minify: true,
  sourcemap: true,
  legalComments: "linked",
  outdir,
  logLevel: "info",
});
