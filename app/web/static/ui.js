// qgjob pages stay readable without this script; with it, the part of a page marked
// [data-live] is refreshed from `<url>?fragment=live` every few seconds while the tab is
// visible, until the server says nothing there can change any more (X-Live-Done).
(function () {
  "use strict";
  var PERIOD_MS = 2000;

  function refresh(region, state) {
    if (state.stopped) return;
    if (document.hidden) { schedule(region, state); return; }
    var headers = state.etag ? { "If-None-Match": state.etag } : {};
    fetch(region.getAttribute("data-live"), { headers: headers, credentials: "same-origin" })
      .then(function (answer) {
        if (answer.redirected || (answer.status !== 200 && answer.status !== 304)) {
          state.stopped = true;  // signed out, or the link expired: leave the page as it is
          return;
        }
        if (answer.headers.get("X-Live-Done")) state.stopped = true;
        if (answer.status === 304) return;
        state.etag = answer.headers.get("ETag");
        return answer.text().then(function (html) { replace(region, html); });
      })
      .catch(function () { /* the server is away; try again later */ })
      .then(function () { schedule(region, state); });
  }

  function schedule(region, state) {
    if (!state.stopped) setTimeout(function () { refresh(region, state); }, PERIOD_MS);
  }

  // Swap the content, keeping keyboard focus on the same control when it is still there.
  function replace(region, html) {
    var focused = document.activeElement;
    var key = focused && region.contains(focused) ? focusKey(focused) : null;
    region.innerHTML = html;
    if (key) {
      var again = region.querySelector(key);
      if (again) again.focus();
    }
    announce(region);
  }

  function focusKey(element) {
    if (element.id) return "#" + CSS.escape(element.id);
    var href = element.getAttribute("href");
    if (href) return '[href="' + CSS.escape(href) + '"]';
    return null;
  }

  function announce(region) {
    var summary = region.querySelector("[data-summary]");
    var target = document.querySelector("[data-announce]");
    if (!summary || !target) return;
    var text = summary.getAttribute("data-summary");
    if (target.textContent !== text) target.textContent = text;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var regions = document.querySelectorAll("[data-live]");
    for (var i = 0; i < regions.length; i++) {
      var state = { etag: null, stopped: false };
      regions[i].setAttribute("data-live-active", "");
      schedule(regions[i], state);
    }
  });
})();
