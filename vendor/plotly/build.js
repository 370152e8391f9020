// A plotly.js partial bundle built from the pinned sources with esbuild:
//   node build.js OUTFILE TRACE...
// registers plotly.js's core (which has `scatter`), the given trace types and the calendars
// component (as plotly.js's own partial bundles do), and copies plotly.js's LICENSE beside
// OUTFILE. lab2land.vendor runs it, after `npm ci --ignore-scripts`, when lab2land is built;
// the trace lists are lab2land.vendor.PACKAGES'.
//
// Why not the published plotly.js-*-dist-min bundles: their UMD wrapper passes the whole
// library to a function as an argument, so Chromium compiles it on the main thread when the
// page runs it; a plain script is compiled while it downloads. The cartesian trace types then
// evaluate in ~0.25 s instead of ~0.65 s here (bench/README.md, P4).
// Node's `buffer` is plotly.js's own choice for the image trace (its package.json devDependency).
"use strict";
const esbuild = require("esbuild");
const fs = require("fs");
const path = require("path");

const [out, ...traces] = process.argv.slice(2);
const plotly = path.dirname(require.resolve("plotly.js/package.json"));
const bad = traces.filter((t) => !/^[a-z0-9]+$/.test(t) || !fs.existsSync(path.join(plotly, "lib", t + ".js")));
if (!out || !traces.length || bad.length) {
  console.error("usage: node build.js OUTFILE TRACE... (plotly.js/lib/TRACE.js must exist)" +
                (bad.length ? "; not plotly.js trace types: " + bad.join(", ") : ""));
  process.exit(2);
}
const modules = traces.filter((t) => t !== "scatter").concat(["calendars"]);
const entry = "var Plotly = require('./lib/core');\nPlotly.register([\n" +
  modules.map((t) => "  require('./lib/" + t + "'),").join("\n") + "\n]);\nmodule.exports = Plotly;\n";
esbuild.build({
  stdin: { contents: entry, resolveDir: plotly, sourcefile: "lab2land-entry.js" },
  outfile: out,
  format: "iife",
  globalName: "Plotly",
  bundle: true,
  minify: true,
  target: "es2016",  // plotly.js's own build target
  define: { global: "window", "define.amd": "false" },
  loader: { ".css": "empty" },  // maplibre-gl's CSS, which only map traces (never built here) load
  legalComments: "eof",
  logLevel: "warning",
}).then(() => {
  fs.copyFileSync(path.join(plotly, "LICENSE"), path.join(path.dirname(out), "LICENSE"));
}).catch(() => process.exit(1));
