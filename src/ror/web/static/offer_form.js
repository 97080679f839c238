// Offer form: the "24 h/24, 7 j/7" shortcut greys out the weekly grid (the server ignores the grid when it is
// checked, so the form also works without JavaScript); the error summary takes the focus after a refused save.
(function () {
  "use strict";
  var all = document.getElementById("h247");
  var grid = document.getElementById("grille-horaires");
  function sync() {
    if (!all || !grid) return;
    grid.querySelectorAll("input").forEach(function (input) { input.disabled = all.checked; });
    grid.setAttribute("aria-disabled", all.checked ? "true" : "false");
  }
  if (all) { all.addEventListener("change", sync); sync(); }
  var summary = document.getElementById("resume-erreurs");
  if (summary) summary.focus();
})();
