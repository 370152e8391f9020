// plotly.js's cartesian partial bundle (the traces of lib/index-cartesian.js), built from the
// pinned sources with esbuild into the folder given as the only argument. lab2land.vendor runs
// this, after `npm ci --ignore-scripts`, when lab2land itself is built.
//
// Why not the published plotly.js-cartesian-dist-min: its UMD wrapper passes the whole bundle
// to a function as an argument, so Chromium compiles it on the main thread when the page runs
// it; this plain script is compiled while it downloads. The same trace types then evaluate in
// ~0.25 s instead of ~0.65 s here (bench/README.md, P4), most of a dashboard's first paint.
// Node's `buffer` is plotly.js's own choice for the image trace (its package.json devDependency).
"use strict";
const esbuild = require("esbuild");
const fs = require("fs");
const path = require("path");

const out = process.argv[2];
if (!out) {
  console.error("usage: node build.js OUTDIR");
  process.exit(2);
}
const plotly = path.dirname(require.resolve("plotly.js/package.json"));
esbuild.build({
  entryPoints: [path.join(plotly, "lib", "index-cartesian.js")],
  outfile: path.join(out, "plotly-cartesian.min.js"),
  format: "iife",
  globalName: "Plotly",
  bundle: true,
  minify: true,
  target: "es2016",  // plotly.js's own build target
  define: { global: "window", "define.amd": "false" },
  loader: { ".css": "empty" },  // maplibre-gl's CSS, which only map traces (not here) load
  legalComments: "eof",
  logLevel: "warning",
}).then(() => {
  fs.copyFileSync(path.join(plotly, "LICENSE"), path.join(out, "LICENSE"));
}).catch(() => process.exit(1));
