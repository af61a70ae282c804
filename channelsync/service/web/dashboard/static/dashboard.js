// channelsync dashboard: the overview's live part refreshes itself. No library, no build.
// An element with data-refresh="SECONDS" and data-src="URL" is replaced by what URL
// answers, every SECONDS while the tab is visible. A 401 means the session ended: reload,
// which leads to the login page.
(function () {
  "use strict";

  function refresh(box) {
    var seconds = Math.max(2, parseInt(box.getAttribute("data-refresh"), 10) || 10);
    var url = box.getAttribute("data-src");
    var busy = false;

    function tick() {
      if (busy || document.visibilityState !== "visible") return;
      busy = true;
      fetch(url, {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}})
        .then(function (response) {
          if (response.status === 401) { window.location.reload(); return null; }
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (html) {
          if (html !== null) {
            box.innerHTML = html;
            box.removeAttribute("data-stale");
          }
        })
        .catch(function () { box.setAttribute("data-stale", "yes"); })
        .then(function () { busy = false; });
    }

    window.setInterval(tick, seconds * 1000);
    document.addEventListener("visibilitychange", tick);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var boxes = document.querySelectorAll("[data-refresh][data-src]");
    for (var i = 0; i < boxes.length; i++) refresh(boxes[i]);
  });
})();
