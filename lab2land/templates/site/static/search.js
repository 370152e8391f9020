/* Site search: the box of every page (templates/site/_search.html.j2), over the index the site
   writes as a script (search-index.js sets window.lab2landSearch; lab2land/search.py), so it
   works from file:// where fetch() does not. MiniSearch (assets/minisearch/, vendored from npm)
   and the index load only once a reader starts typing. Results are built with textContent and
   attributes only, never HTML: titles and notebook text show as text, whatever they hold. */
(function () {
  "use strict";

  var MAX_RESULTS = 20;
  var FIELDS = ["title", "report", "description", "tags", "variant", "params", "metrics", "headings", "text"];

  var box = document.querySelector(".l2l-sitesearch");
  if (!box) return;
  var root = box.getAttribute("data-l2l-root") || "";
  var input = box.querySelector(".l2l-sitesearch-input");
  var status = box.querySelector(".l2l-sitesearch-status");
  var list = box.querySelector(".l2l-sitesearch-results");
  var engine = null, groups = null, loading = null;
  box.hidden = false;

  function loadScript(src, ready) {
    return new Promise(function (resolve, reject) {
      if (ready()) { resolve(); return; }
      var s = document.createElement("script");
      s.src = src;
      s.onload = function () { resolve(); };
      s.onerror = function () { reject(new Error(src)); };
      document.head.appendChild(s);
    });
  }

  function load() {
    if (!loading) {
      loading = loadScript(root + "assets/minisearch/minisearch.js", function () { return !!window.MiniSearch; })
        .then(function () { return loadScript(root + "search-index.js", function () { return !!window.lab2landSearch; }); })
        .then(build);
    }
    return loading;
  }

  // One document per report variant and distinct notebook text: versions of one variant that
  // share their text are found together, and the link goes to the newest matching one.
  function build() {
    var data = window.lab2landSearch || {};
    var byKey = {};
    groups = [];
    (data.reports || []).forEach(function (r) {
      var texts = r.x || [], strings = r.s || [];
      (r.v || []).forEach(function (row) {
        var label = strings[row[1]] || "", params = strings[row[4]] || "", metrics = strings[row[5]] || "";
        var key = r.n + "\u0000" + label + "\u0000" + row[6];
        var g = byKey[key];
        if (!g) {
          var text = row[6] >= 0 ? texts[row[6]] : null;
          g = byKey[key] = {
            id: groups.length, report: r.n, title: r.t || r.n, description: r.d || "",
            tags: (r.g || []).join(" "), variant: label, params: "", metrics: "",
            headings: text ? text[0].join(" ") : "", text: text ? text[1] : "", versions: []
          };
          groups.push(g);
        }
        g.versions.push({folder: row[0], status: row[2], created: row[3], params: params});
        if (g.params.indexOf(params) < 0) g.params += (g.params ? "; " : "") + params;
        if (g.metrics.indexOf(metrics) < 0) g.metrics += (g.metrics ? " " : "") + metrics;
      });
    });
    engine = new window.MiniSearch({fields: FIELDS, storeFields: []});
    engine.addAll(groups);
  }

  function search(query) {
    return engine.search(query, {
      prefix: true, combineWith: "AND",
      boost: {title: 3, report: 2, headings: 2, tags: 2, variant: 2, params: 1.5}
    }).slice(0, MAX_RESULTS);
  }

  // The newest version of the group, or, when the query matched parameter values, the newest
  // whose own parameters hold a matched term.
  function bestVersion(group, result) {
    var versions = group.versions;
    var byParams = Object.keys(result.match || {}).filter(function (term) {
      return (result.match[term] || []).indexOf("params") >= 0;
    });
    for (var i = 0; i < versions.length && byParams.length; i++) {
      var own = versions[i].params.toLowerCase();
      if (byParams.every(function (t) { return own.indexOf(t) >= 0; })) return versions[i];
    }
    return versions[0];
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text) node.textContent = text;
    return node;
  }

  function show(results, query) {
    list.textContent = "";
    results.forEach(function (result) {
      var g = groups[result.id];
      var v = bestVersion(g, result);
      var li = el("li", "l2l-sitesearch-result");
      var a = el("a", null, g.title + (g.variant ? " · " + g.variant : ""));
      a.setAttribute("href", root + encodeURIComponent(g.report) + "/" + encodeURIComponent(v.folder) + "/index.html");
      li.appendChild(a);
      var meta = el("span", "l2l-sitesearch-meta", v.status + " · " + v.created.replace("T", " ") +
                    (g.versions.length > 1 ? " · " + g.versions.length + " versions" : ""));
      li.appendChild(meta);
      var fields = {};
      Object.keys(result.match || {}).forEach(function (t) {
        (result.match[t] || []).forEach(function (f) { fields[f] = true; });
      });
      var where = fields.headings && g.headings ? g.headings : fields.params ? v.params :
        fields.description ? g.description : g.headings || g.description;
      if (where) li.appendChild(el("span", "l2l-sitesearch-context", where.slice(0, 200)));
      list.appendChild(li);
    });
    list.hidden = results.length === 0;
    status.hidden = false;
    status.textContent = results.length ? results.length + (results.length === MAX_RESULTS ? "+" : "") +
      " result" + (results.length === 1 ? "" : "s") : "Nothing found for \u201c" + query + "\u201d";
  }

  function update() {
    var query = input.value.trim();
    if (!query) {
      list.hidden = true; status.hidden = true; list.textContent = "";
      return;
    }
    load().then(function () {
      if (input.value.trim() === query) show(search(query), query);
    }, function (err) {
      status.hidden = false;
      status.textContent = "Search is not available: " + err.message + " could not be loaded";
    });
  }

  input.addEventListener("input", update);
  input.addEventListener("focus", function () { load().catch(function () {}); });
  input.addEventListener("keydown", function (event) {
    var first = list.querySelector("a");
    if (event.key === "Enter" && first) { window.location.href = first.href; }
    if (event.key === "Escape") { input.value = ""; update(); }
  });
})();
