/* MathJax 3 settings for lab2land pages, loaded just before assets/mathjax/tex-chtml-full.js
   or, on pages whose plotly figures hold TeX, assets/mathjax-svg/tex-svg-full.js (plotly.js
   typesets only through the SVG output). A file, because pages forbid inline script.
   Typesets only markdown cells and LaTeX/markdown outputs, as Jupyter does, not tables or
   text that happen to hold "$"; the widget manager typesets its labels itself (below). */
window.MathJax = {
  tex: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
    // \href{url}{text} shows its text only: a link from TeX could be javascript:, and this
    // MathJax build has no "safe" extension to vet URLs (the page's CSP would still block it).
    macros: { href: ["{#2}", 2] }
  },
  options: {
    ignoreHtmlClass: "l2l-page",
    processHtmlClass: "jp-RenderedMarkdown|jp-RenderedLatex|jp-MarkdownOutput",
    // The menu's accessibility explorer would load its speech engine from a CDN.
    enableMenu: false
  },
  chtml: { displayAlign: "left" },
  svg: { displayAlign: "left", fontCache: "global" },
  startup: {
    ready: function () {
      window.MathJax.startup.defaultReady();
      // The widget manager still typesets through the MathJax 2 API (MathJax.Hub.Queue)
      // whenever window.MathJax exists; give it that entry point.
      window.MathJax.Hub = {
        Queue: function (job) {
          var el = job && job[2];
          if (el && window.MathJax.typesetPromise) window.MathJax.typesetPromise([el]).catch(function () {});
        }
      };
    }
  }
};
