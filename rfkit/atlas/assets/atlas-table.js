// rfkit atlas: sortable columns and a filter box for the tables inside an element of class "rfkit-atlas"
// (the atlas site's lists, the docs' atlas page; no dependencies, no CDN).
// Click a column header to sort by it (numbers as numbers, again to reverse); type in the box above a table
// to keep the rows holding every word typed ("resnet 32" keeps rows with both), "col>=N" to compare a
// column ("rf>=800"). Only textContent is read and written: no cell is ever parsed as HTML.
(function () {
  "use strict";
  function value(cell) {
    var text = cell.textContent.trim();
    var number = parseFloat(text.replace(/[×x].*$/, ""));
    return isNaN(number) ? (text === "inf" || text === "global" ? Infinity : text.toLowerCase()) : number;
  }
  function compare(a, b) {
    if (typeof a === typeof b) { return a < b ? -1 : a > b ? 1 : 0; }
    return typeof a === "number" ? -1 : 1;
  }
  function sortBy(table, index, header) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var descending = header.getAttribute("data-sorted") === "asc";
    rows.sort(function (r, s) {
      var c = compare(value(r.cells[index]), value(s.cells[index]));
      return descending ? -c : c;
    });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("data-sorted"); });
    header.setAttribute("data-sorted", descending ? "desc" : "asc");
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function matches(row, names, words) {
    return words.every(function (word) {
      var m = /^([A-Za-z_]+)(>=|<=|>|<|=)(-?[0-9.]+|inf)$/.exec(word);
      if (m && names.indexOf(m[1]) >= 0) {
        var v = value(row.cells[names.indexOf(m[1])]);
        var n = m[3] === "inf" ? Infinity : parseFloat(m[3]);
        if (typeof v !== "number") { return false; }
        return { ">=": v >= n, "<=": v <= n, ">": v > n, "<": v < n, "=": v === n }[m[2]];
      }
      return row.textContent.toLowerCase().indexOf(word) >= 0;
    });
  }
  function enhance(table) {
    if (!table.tHead || !table.tBodies.length || table.getAttribute("data-atlas") === "done") { return; }
    table.setAttribute("data-atlas", "done");
    var names = Array.prototype.map.call(table.tHead.rows[0].cells, function (h) {
      return h.textContent.trim().toLowerCase().replace(/[^a-z0-9_]+/g, "_");
    });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, index) {
      header.style.cursor = "pointer";
      header.title = "sort by this column";
      header.addEventListener("click", function () { sortBy(table, index, header); });
    });
    var box = document.createElement("input");
    box.type = "search";
    box.placeholder = "filter: words, or column>=number (" + names.slice(0, 3).join(", ") + ", ...)";
    box.className = "atlas-filter";
    box.style.cssText = "width: 100%; box-sizing: border-box; padding: .4em .6em; margin: .4em 0 .2em; " +
      "border: 1px solid #9e9e9e; border-radius: 3px; font: inherit;";
    var count = document.createElement("div");
    count.className = "atlas-count";
    count.style.cssText = "font-size: .7rem; color: #757575; margin-bottom: .3em;";
    var total = table.tBodies[0].rows.length;
    count.textContent = total + " rows";
    box.addEventListener("input", function () {
      var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        var keep = matches(row, names, words);
        row.style.display = keep ? "" : "none";
        shown += keep ? 1 : 0;
      });
      count.textContent = words.length ? shown + " of " + total + " rows" : total + " rows";
    });
    table.parentNode.insertBefore(box, table);
    table.parentNode.insertBefore(count, table);
  }
  function run() { Array.prototype.forEach.call(document.querySelectorAll("article .rfkit-atlas table"), enhance); }
  if (typeof document$ !== "undefined") { document$.subscribe(run); } else { document.addEventListener("DOMContentLoaded", run); }
})();
