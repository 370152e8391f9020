/* lab2land page script: loaded from assets/ by every page (no inline script anywhere, so
   pages can forbid it by Content-Security-Policy). Works from file://: it reads data from
   <script type="application/json"> blocks and from versions.js (a script, not fetch()).
   It never writes HTML: only textContent and attributes. */
(function () {
  "use strict";

  // Where this script lives: the assets folder, wherever the page is.
  var script = document.currentScript;
  var ASSETS = script && script.src ? script.src.replace(/[^\/]*$/, "") : "";

  function onReady(fn) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", fn);
    } else {
      fn();
    }
  }

  function isRelative(url) {
    // Only links within the site: no scheme (javascript:, http:, ...), no protocol-relative.
    return typeof url === "string" && url !== "" && !/^[a-z][a-z0-9+.\-]*:/i.test(url) && url.indexOf("//") !== 0;
  }

  /* ---- Plotly figures: JSON data blocks drawn with the shared plotly.js (assets/) ---- */
  function drawPlots() {
    var blocks = document.querySelectorAll("script.l2l-plotly-data");
    for (var i = 0; i < blocks.length; i++) {
      var block = blocks[i];
      var target = block.parentNode.querySelector(".l2l-plotly-target");
      if (!target) continue;
      if (!window.Plotly) {
        target.className += " l2l-plotly-missing";
        target.textContent = "This chart needs plotly.js from the site's assets/, which did not load.";
        continue;
      }
      try {
        var fig = JSON.parse(block.textContent);
        var config = Object.assign({}, fig.config || {}, {
          responsive: true,
          displaylogo: false,
          // Geo traces would fetch map outlines from a CDN; keep any such request local.
          topojsonURL: ASSETS + "topojson/"
        });
        delete config.plotlyServerURL;
        var drawn = window.Plotly.newPlot(target, fig.data || [], fig.layout || {}, config);
        if (target.dataset.l2lClick === "open") {
          // Trend charts: a point's customdata is its version page, relative to this page.
          drawn.then(function (gd) {
            gd.on("plotly_click", function (event) {
              var url = event.points && event.points[0] && event.points[0].customdata;
              if (isRelative(url)) window.location.href = url;
            });
          });
        }
      } catch (err) {
        target.textContent = "This chart could not be drawn: " + err;
      }
    }
  }

  /* ---- Version navigation from versions.js (written by the publisher, per report) ---- */
  function link(name) {
    return document.querySelector('[data-l2l-nav="' + name + '"]');
  }

  function showLink(el, version, label) {
    if (!el || !version || !isRelative(version.url)) return;
    el.setAttribute("href", document.body.dataset.reportRoot + version.url);
    el.textContent = label + (version.status === "ok" ? "" : " (failed)");
    el.title = version.created || version.id;
    el.hidden = false;
  }

  // The report's live dashboard as its config says now: turned on (or off) after a version was
  // published, the version's page follows, since versions.js is rewritten on every build.
  function dashboardLink(data) {
    var el = link("dashboard");
    if (!el || !("dashboard" in data)) return;
    if (isRelative(data.dashboard)) {
      el.setAttribute("href", document.body.dataset.reportRoot + data.dashboard);
      el.hidden = false;
    } else {
      el.hidden = true;
    }
  }

  function versionNav() {
    var body = document.body;
    var data = window.lab2landVersions;
    if (!body.dataset.version || !data || !Array.isArray(data.versions)) return;
    var id = body.dataset.version;
    var variant = body.dataset.variant;
    var same = data.versions.filter(function (v) { return v && v.variant === variant; });
    var at = -1;
    for (var i = 0; i < same.length; i++) if (same[i].id === id) at = i;
    if (at < 0) return;
    // versions are newest first
    showLink(link("newer"), same[at - 1], "\u2190 Newer");
    showLink(link("older"), same[at + 1], "Older \u2192");
    dashboardLink(data);

    var latestId = data.latest && data.latest[variant];
    var latest = same.filter(function (v) { return v.id === latestId; })[0];
    var notice = document.querySelector(".l2l-newer-notice");
    if (!notice || !latest || latest.id === id || !isRelative(latest.url)) return;
    var text = at > same.indexOf(latest)
      ? "A newer version of this report exists. "
      : "This run is newer than the latest good version. ";
    notice.textContent = text;
    var a = document.createElement("a");
    a.setAttribute("href", body.dataset.reportRoot + latest.url);
    a.textContent = "Open the latest version (" + (latest.created || latest.id) + ")";
    notice.appendChild(a);
    notice.hidden = false;
  }

  /* ---- Links to versions that retention has removed since the page was written ---- */
  function removedVersions() {
    var data = window.lab2landVersions;
    if (!data || !Array.isArray(data.versions)) return;
    var listed = {};
    data.versions.forEach(function (v) { if (v) listed[v.id] = true; });
    var links = document.querySelectorAll("a[data-l2l-version]");
    for (var i = 0; i < links.length; i++) {
      if (listed[links[i].getAttribute("data-l2l-version")]) continue;
      var gone = document.createElement("span");
      gone.className = "l2l-removed";
      gone.textContent = links[i].textContent + " (no longer kept)";
      links[i].replaceWith(gone);
    }
  }

  /* ---- Site index: filter report cards as you type ---- */
  function cardFilter() {
    var input = document.getElementById("l2l-search");
    if (!input) return;
    var cards = document.querySelectorAll("[data-l2l-search]");
    input.hidden = false;
    input.addEventListener("input", function () {
      var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      for (var i = 0; i < cards.length; i++) {
        var hay = cards[i].getAttribute("data-l2l-search").toLowerCase();
        cards[i].hidden = !words.every(function (w) { return hay.indexOf(w) >= 0; });
      }
    });
  }

  /* ---- Times: show the reader's local time on hover ---- */
  function localTimes() {
    var times = document.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var d = new Date(times[i].getAttribute("datetime"));
      if (!isNaN(d.getTime())) times[i].title = d.toLocaleString();
    }
  }

  // Plotly typesets TeX with MathJax's SVG output: draw once MathJax has started, when the page
  // loads it (pages whose figures hold TeX); if it fails, draw anyway (the TeX shows raw).
  function drawPlotsWhenMathReady() {
    var loader = document.querySelector('script[src$="mathjax-svg/tex-svg-full.js"]');
    function afterStartup() {
      var mj = window.MathJax;
      if (mj && mj.startup && mj.startup.promise) mj.startup.promise.then(drawPlots, drawPlots);
      else drawPlots();
    }
    if (!loader || !document.querySelector("script.l2l-plotly-data")) {
      drawPlots();
    } else if (window.MathJax && window.MathJax.version) {
      afterStartup();
    } else {
      // Deferred scripts run in order and this one comes first: wait for MathJax's file.
      loader.addEventListener("load", afterStartup);
      loader.addEventListener("error", drawPlots);
    }
  }

  onReady(function () {
    drawPlotsWhenMathReady();
    versionNav();
    removedVersions();
    cardFilter();
    localTimes();
  });
})();
