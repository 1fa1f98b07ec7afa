// Neuroscope pages: colour the tokens of each text by this neuron's activation (one shared scale per
// neuron), show a window around the max token, expand to the full text, keyboard navigation.
(function () {
  "use strict";
  var WINDOW_BEFORE = 24, WINDOW_AFTER = 8;

  function colour(value, scale) {
    var strength = Math.min(Math.abs(value) / scale, 1);
    return value >= 0 ? "rgba(255,120,0," + strength.toFixed(3) + ")" : "rgba(40,100,255," + (0.6 * strength).toFixed(3) + ")";
  }

  function tokenSpan(text, value, scale, isMax) {
    var span = document.createElement("span");
    span.className = isMax ? "tok max" : "tok";
    span.textContent = text.replace(/\n/g, "\u21b5\n");
    span.style.backgroundColor = colour(value, scale);
    span.title = JSON.stringify(text) + "  " + value.toFixed(3);
    return span;
  }

  function renderText(container, example, strings, scale, full) {
    container.textContent = "";
    var n = example.ids.length;
    var start = full ? 0 : Math.max(0, example.max - WINDOW_BEFORE);
    var stop = full ? n : Math.min(n, example.max + WINDOW_AFTER + 1);
    if (example.mid && start === 0) container.appendChild(document.createTextNode("\u22ef "));  // mid-document
    if (start > 0) container.appendChild(document.createTextNode("\u2026"));
    for (var i = start; i < stop; i++) {
      var text = strings[example.ids[i]];
      if (text === undefined) text = "<" + example.ids[i] + ">";
      container.appendChild(tokenSpan(text, example.acts[i], scale, i === example.max));
    }
    if (stop < n) container.appendChild(document.createTextNode("\u2026"));
    container.dataset.full = full ? "1" : "0";
  }

  function renderExamples(list, examples, strings, scale, full) {
    examples.forEach(function (example, i) {
      var item = document.createElement("div");
      item.className = "example";
      var head = document.createElement("div");
      head.className = "example-head";
      head.textContent = example.label + "  max " + example.value.toFixed(3) + " at token " + example.max + " of " + example.ids.length
        + (example.place ? "  \u00b7 " + example.place : "");
      var body = document.createElement("div");
      body.className = "text";
      var button = document.createElement("button");
      button.className = "expand";
      button.textContent = full ? "around max" : "full text";
      button.addEventListener("click", function () {
        var full = body.dataset.full !== "1";
        renderText(body, example, strings, scale, full);
        button.textContent = full ? "around max" : "full text";
      });
      head.appendChild(button);
      item.appendChild(head);
      item.appendChild(body);
      list.appendChild(item);
      renderText(body, example, strings, scale, full);
    });
  }

  function start() {
    var node = document.getElementById("neuron-data");
    if (!node) return;
    var data = JSON.parse(node.textContent);
    function draw() {
      var full = window.location.hash === "#full";  // a link to the page with every text expanded
      var top = document.getElementById("top-texts"), samples = document.getElementById("sample-texts");
      top.textContent = "";
      samples.textContent = "";
      renderExamples(top, data.top, data.strings, data.scale, full);
      renderExamples(samples, data.samples, data.strings, data.scale, full);
    }
    draw();
    window.addEventListener("hashchange", draw);
    var random = document.getElementById("random");
    function goRandom() {
      window.location.href = Math.floor(Math.random() * data.neurons) + ".html";
    }
    random.addEventListener("click", function (e) { e.preventDefault(); goRandom(); });
    document.addEventListener("keydown", function (e) {
      if (e.target && (e.target.tagName === "INPUT" || e.target.tagName === "TEXTAREA")) return;
      if (e.key === "ArrowLeft" || e.key === "k") document.getElementById("prev").click();
      if (e.key === "ArrowRight" || e.key === "j") document.getElementById("next").click();
      if (e.key === "r") goRandom();
    });
    document.body.dataset.rendered = "1";
  }

  // sortable index tables: click a header to sort by it
  function sortable() {
    var table = document.getElementById("neurons");
    if (!table) return;
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, column) {
      th.addEventListener("click", function () {
        var rows = Array.prototype.slice.call(table.tBodies[0].rows);
        var descending = th.dataset.order !== "desc";
        rows.sort(function (a, b) {
          var x = a.cells[column].dataset.v, y = b.cells[column].dataset.v;
          var nx = parseFloat(x), ny = parseFloat(y);
          var cmp = isNaN(nx) || isNaN(ny) ? String(x).localeCompare(String(y)) : nx - ny;
          return descending ? -cmp : cmp;
        });
        Array.prototype.forEach.call(heads, function (h) { delete h.dataset.order; });
        th.dataset.order = descending ? "desc" : "asc";
        rows.forEach(function (row) { table.tBodies[0].appendChild(row); });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { start(); sortable(); });
})();
