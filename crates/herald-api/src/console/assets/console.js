// Herald console: refreshes a page's list in place. The page works without it (every list has
// a real "Next page" link and a "Refresh" link); this only saves a reload. Elements marked
// data-refresh="URL" are replaced with the fragment the server renders at that URL.
"use strict";
(function () {
  function refresh(element) {
    var url = element.getAttribute("data-refresh");
    if (!url) { return; }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.redirected || !response.ok) { return null; }
        return response.text();
      })
      .then(function (html) {
        if (html === null) { return; }
        var template = document.createElement("template");
        template.innerHTML = html;
        var replacement = template.content.firstElementChild;
        if (replacement) { element.replaceWith(replacement); }
      })
      .catch(function () { /* offline for a moment: the next tick tries again */ });
  }
  function tick() {
    document.querySelectorAll("[data-refresh]").forEach(refresh);
  }
  document.addEventListener("DOMContentLoaded", function () {
    if (document.querySelector("[data-refresh]")) { setInterval(tick, 5000); }
  });
})();
