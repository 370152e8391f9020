/* lab2land dashboards: what Voila's lab template does with inline <script> blocks, as a file,
   so the page's Content-Security-Policy can forbid inline script (lab2land.sanitize). Each
   <script src> tag says what to do through its data-l2l-step attribute:
   "setup" defines Voila's page helpers, "cell" reports progress, "finish" shows the cells. */
(function () {
  var data = document.currentScript ? document.currentScript.dataset : {};
  if (data.l2lStep === "setup") {
    window.voila_heartbeat = function () {};
    window.update_loading_text = function (cellIndex, cellCount, text) {
      var spinner = document.getElementById("loading");
      if (spinner && spinner.style.display === "none") spinner.style.display = "flex";
      var el = document.getElementById("loading_text");
      // textContent: the text is ours, but nothing here needs markup.
      if (el) el.textContent = text || ("Executing " + cellIndex + " of " + cellCount);
    };
    window.display_cells = function () {
      if (!window.themeLoaded) {
        window.cellLoaded = true;
        return;
      }
      var el = document.getElementById("loading");
      if (el) el.parentNode.removeChild(el);
      el = document.getElementById("rendered_cells");
      if (el) el.style.display = "";
    };
    window.voila_process = window.update_loading_text;
    window.voila_finish = window.display_cells;
  } else if (data.l2lStep === "cell") {
    window.voila_process(Number(data.cell), Number(data.count));
  } else if (data.l2lStep === "finish") {
    window.voila_finish();
  }
})();
