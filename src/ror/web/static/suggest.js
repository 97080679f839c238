// Suggestions for text fields with data-suggest="<JSON endpoint>": fills the field's <datalist> as the person
// types (NOS activities with their labels, communes). Without JavaScript the server still accepts codes and names.
(function () {
  "use strict";
  document.querySelectorAll("input[data-suggest]").forEach(function (input) {
    var list = document.getElementById(input.getAttribute("list"));
    var timer = null;
    var last = "";
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var q = input.value.trim();
        if (q.length < 2 || q === last || / — /.test(q)) return;
        last = q;
        fetch(input.getAttribute("data-suggest") + "?q=" + encodeURIComponent(q), { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.json() : []; })
          .then(function (items) {
            list.innerHTML = "";
            items.forEach(function (item) {
              var opt = document.createElement("option");
              opt.value = item.code + " — " + item.label;
              list.appendChild(opt);
            });
          })
          .catch(function () {});
      }, 150);
    });
  });
})();
