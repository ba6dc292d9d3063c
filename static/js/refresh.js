/* Live regions: an element with data-live-url is replaced by the element with the same id
 * in the HTML that URL returns, while its data-live-active is "1" (verifications are queued
 * or running). The first refresh comes after data-live-interval ms; with data-live-max, each
 * wait is half as long again as the one before, up to that many ms (fast while a result is
 * likely, gentle after), otherwise the interval stays fixed. No framework, no inline script (CSP).
 * The request says it is a background one (X-Portal-Background), so it does not count as
 * activity for the session's idle time-out. A region is left alone while the user has a
 * box ticked or the focus inside it. */
(function () {
  "use strict";

  function watch(region) {
    var interval = parseInt(region.getAttribute("data-live-interval"), 10) || 5000;
    var ceiling = Math.max(parseInt(region.getAttribute("data-live-max"), 10) || 0, interval);

    function busy() {
      return region.querySelector("input[type=checkbox]:checked") !== null ||
        region.contains(document.activeElement);
    }

    function schedule() {
      window.setTimeout(tick, interval);
      interval = Math.min(Math.round(interval * 1.5), ceiling);
    }

    function tick() {
      if (region.getAttribute("data-live-active") !== "1") {
        return;
      }
      if (document.hidden || busy()) {
        schedule();
        return;
      }
      fetch(region.getAttribute("data-live-url"), {
        credentials: "same-origin",
        headers: { "X-Portal-Background": "1" },
        redirect: "error"
      }).then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      }).then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById(region.id);
        if (fresh === null) {
          return;
        }
        region.replaceWith(fresh);
        region = fresh;
        schedule();
      }).catch(function () {
        // Signed out, or the server is away: try again later, gently.
        interval = Math.min(interval * 2, 60000);
        ceiling = Math.max(ceiling, interval);
        schedule();
      });
    }

    schedule();
  }

  var regions = document.querySelectorAll("[data-live-url]");
  for (var i = 0; i < regions.length; i += 1) {
    watch(regions[i]);
  }

  // "Select all" boxes: <input type=checkbox data-select-all="name">.
  document.addEventListener("change", function (event) {
    var target = event.target;
    var name = target.getAttribute && target.getAttribute("data-select-all");
    if (!name) {
      return;
    }
    var boxes = document.querySelectorAll("input[type=checkbox][name='" + name + "']");
    for (var j = 0; j < boxes.length; j += 1) {
      boxes[j].checked = target.checked;
    }
  });

  // Copy buttons: <button data-copy="element-id">.
  document.addEventListener("click", function (event) {
    var target = event.target;
    var id = target.getAttribute && target.getAttribute("data-copy");
    if (!id || !navigator.clipboard) {
      return;
    }
    var source = document.getElementById(id);
    navigator.clipboard.writeText(source.value || source.textContent).then(function () {
      target.textContent = "Copied";
    });
  });
})();
