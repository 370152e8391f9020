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
    // The cells are shown as soon as they are all on the page, not when Voila's front end
    // has loaded its theme: the page carries the light theme's CSS, and the first paint
    // (lab2land.dashboard_paint) has drawn what the cells show.
    window.display_cells = function () {
      var el = document.getElementById("loading");
      if (el) el.parentNode.removeChild(el);
      el = document.getElementById("rendered_cells");
      if (el) el.style.display = "";
    };
    window.voila_process = window.update_loading_text;
    window.voila_finish = window.display_cells;
  } else if (data.l2lStep === "cell") {
    window.voila_process(Number(data.cell), Number(data.count));
  } else if (data.l2lStep === "pictures") {
    placePictures();
  } else if (data.l2lStep === "finish") {
    window.voila_finish();
  } else if (data.l2lStep === "start") {
    start(data.main);
  }

  // The page paints in this order: tables and text as they stream in; the widgets' initial
  // state (embed.js, on the window's load event); the figures (plotly.js, run from here, so
  // that evaluating it holds back neither the load event nor the widgets); then Voila's front
  // end starts (its ~60 chunks would otherwise hold all of that back) and the widgets go live.
  function start(main) {
    watchLiveViews();
    function load() {
      // Voila's front end starts on the window's load event, which has fired by now: a load
      // listener added from here on is called at once instead of never.
      var add = window.addEventListener;
      window.addEventListener = function (type, listener) {
        if (type === "load" && document.readyState === "complete" && typeof listener === "function") {
          setTimeout(function () { listener.call(window, new Event("load")); }, 0);
          return;
        }
        return add.apply(this, arguments);
      };
      var script = document.createElement("script");
      script.src = main;
      document.body.appendChild(script);
    }
    function afterLoad() {
      var since = Date.now();
      (function wait() {
        if (prepaintsDrawn() || Date.now() - since > PAINT_WAIT_MS) {
          freezePrepaints();
          drawFigures(load);
        } else {
          requestAnimationFrame(wait);
        }
      })();
    }
    if (document.readyState === "complete") afterLoad();
    else window.addEventListener("load", function () { setTimeout(afterLoad, 0); });
  }

  // Runs the scripts the page preloaded for its figures (plotly.js, then lab2land.js, which
  // draws them), one after the other; then, once a frame showing them has been drawn, `then`.
  function drawFigures(then) {
    var links = Array.prototype.slice.call(document.querySelectorAll("link.l2l-draw-js"));
    (function next() {
      var link = links.shift();
      if (!link) {
        if (document.querySelector("script.l2l-plotly-data")) {
          requestAnimationFrame(function () { setTimeout(then, 0); });
        } else {
          then();
        }
        return;
      }
      var script = document.createElement("script");
      script.src = link.href;
      script.onload = script.onerror = next;  // a missing plotly.js: lab2land.js says so in place
      document.body.appendChild(script);
    })();
  }

  // The widgets painted on the server (lab2land.widget_paint) come after the cells, once the
  // kernel's widget state is known: each goes in front of its view's data block, inert, where
  // embed.js would have drawn it and where the live view will come.
  function placePictures() {
    var pictures = {};
    document.querySelectorAll("template.l2l-picture").forEach(function (t) {
      pictures[t.dataset.modelId] = t;
    });
    prepaintViews().forEach(function (view) {
      var id;
      try { id = JSON.parse(view.textContent).model_id; } catch (e) { return; }
      var picture = pictures[id];
      if (!picture) return;
      var area = document.createElement("div");
      area.className = "l2l-prepaint l2l-picture-area";
      area.inert = true;
      area.setAttribute("aria-hidden", "true");
      area.appendChild(picture.content.cloneNode(true));
      view.parentNode.insertBefore(area, view);
    });
  }

  var PAINT_WAIT_MS = 3000;
  var PENDING_MS = 20000;

  function prepaintViews() {
    return Array.prototype.slice.call(document.querySelectorAll("script.l2l-prepaint-view"));
  }

  // embed.js puts a div.widget-subarea before each widget's data block and draws into it.
  function subareaOf(view) {
    var el = view.previousElementSibling;
    return el && el.classList.contains("widget-subarea") ? el : null;
  }

  function prepaintsDrawn() {
    // No widget state on the page (no widgets, or not ones embed.js draws): nothing to wait for.
    if (!document.querySelector('script[type="application/vnd.jupyter.widget-state+json"]')) return true;
    return prepaintViews().every(function (view) {
      var area = subareaOf(view);
      return area && area.offsetHeight > 0 && area.childElementCount > 0;
    });
  }

  // A widget drawn from its initial state is a picture of it: its computed look is kept as
  // inline style and its classes are removed, so that neither the viewer's clicks (it is
  // inert) nor anything looking for a widget (".widget-slider") takes it for the live one.
  function freezePrepaints() {
    prepaintViews().forEach(function (view) {
      var area = subareaOf(view);
      if (!area) return;
      // Not drawn, or drawn as embed.js's error notice (a widget library it does not have):
      // nothing is painted there, the live view comes as it always did.
      if (!area.childElementCount || area.querySelector(".jupyter-widgets-error-widget") ||
          /Error (displaying|creating) widget/.test(area.textContent)) {
        area.parentNode.removeChild(area);
        return;
      }
      var els = [area].concat(Array.prototype.slice.call(area.querySelectorAll("*")));
      // All reads first, then all writes: computed styles are live.
      var looks = els.map(function (el) {
        var cs = getComputedStyle(el), look = [];
        for (var i = 0; i < cs.length; i++) {
          if (cs[i] !== "visibility") look.push([cs[i], cs.getPropertyValue(cs[i])]);
        }
        return look;
      });
      els.forEach(function (el, k) {
        looks[k].forEach(function (pv) { el.style.setProperty(pv[0], pv[1]); });
        el.removeAttribute("class");
        el.removeAttribute("id");
      });
      area.className = "l2l-prepaint";
      area.inert = true;
      area.setAttribute("aria-hidden", "true");
    });
    document.body.classList.add("l2l-painted");
    if (!document.querySelector(".l2l-prepaint")) document.body.classList.add("l2l-live");
  }

  // The live view Voila appends to the same output waits hidden on top of the picture until
  // it has drawn, then takes its place: no jump, and no moment without the widget.
  function watchLiveViews() {
    function swap(live) {
      var parent = live.parentElement;
      var old = parent ? parent.querySelectorAll(":scope > .l2l-prepaint, :scope > .widget-subarea, " +
                                                 ":scope > script.l2l-prepaint-view") : [];
      for (var i = 0; i < old.length; i++) old[i].parentNode.removeChild(old[i]);
      live.classList.remove("l2l-live-pending");
      if (parent) parent.classList.remove("l2l-swapping");
      if (!document.querySelector(".l2l-prepaint")) document.body.classList.add("l2l-live");
    }
    function adopt(live) {
      var parent = live.parentElement;
      if (!parent.querySelector(":scope > .l2l-prepaint")) {
        swap(live);  // nothing painted there (or not yet frozen): show the live view
        return;
      }
      parent.classList.add("l2l-swapping");
      live.classList.add("l2l-live-pending");
      var since = Date.now();
      (function check() {
        if (!live.isConnected) return;
        var drawn = live.offsetHeight > 0 && live.querySelector(".jupyter-widgets, .lm-Widget");
        if (drawn || Date.now() - since > PENDING_MS) swap(live);
        else requestAnimationFrame(check);
      })();
    }
    new MutationObserver(function (records) {
      records.forEach(function (record) {
        record.addedNodes.forEach(function (node) {
          if (node.nodeType === 1 && node.classList.contains("jp-OutputArea-output") && node.parentElement &&
              node.parentElement.querySelector(":scope > script.l2l-prepaint-view")) {
            adopt(node);
          }
        });
      });
    }).observe(document.body, {childList: true, subtree: true});
  }
})();
