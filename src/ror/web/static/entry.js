// Saisie des disponibilités: spreadsheet-like keyboard moves (ArrowDown / ArrowUp = same column, next / previous
// unit), content selected on focus so that typing replaces it, first field focused on load. Enter submits the form
// natively (the first submit button is "Enregistrer"). Without JavaScript the form works the same with Tab.
(function () {
  "use strict";
  var form = document.getElementById("saisie");
  if (!form) return;
  var inputs = Array.prototype.slice.call(form.querySelectorAll("input.num"));
  var rows = [];
  inputs.forEach(function (input) {
    var row = input.getAttribute("data-row");
    if (rows.indexOf(row) < 0) rows.push(row);
    input.addEventListener("focus", function () { input.select(); });
  });
  function target(from, step) {
    var r = rows.indexOf(from.getAttribute("data-row")) + step;
    var col = from.getAttribute("data-col");
    while (r >= 0 && r < rows.length) {
      var inRow = inputs.filter(function (i) { return i.getAttribute("data-row") === rows[r]; });
      var same = inRow.filter(function (i) { return i.getAttribute("data-col") === col; });
      if (same.length) return same[0];
      var avail = inRow.filter(function (i) { return /^available/.test(i.getAttribute("data-col")); });
      if (/^available/.test(col) && avail.length) return avail[0];
      if (inRow.length) return inRow[0];
      r += step;
    }
    return null;
  }
  form.addEventListener("keydown", function (e) {
    if (!e.target.classList || !e.target.classList.contains("num")) return;
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
    var next = target(e.target, e.key === "ArrowDown" ? 1 : -1);
    if (next) { e.preventDefault(); next.focus(); }
  });
  var firstError = form.querySelector("input[aria-invalid=true]");
  var first = firstError || inputs[0];
  if (first) { first.focus(); first.select(); }
})();
