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
          // Signed out, or the link expired: leave the page as it is, and say so.
          stop(region, state, answer.redirected
            ? "Live updates stopped: the session ended. Sign in again to see changes."
            : "Live updates stopped (the server answered " + answer.status + "). Reload the page to try again.");
          return;
        }
        if (answer.headers.get("X-Live-Done")) state.stopped = true;
        if (answer.status === 304) return;
        state.etag = answer.headers.get("ETag");
        return answer.text().then(function (html) {
          if (html !== state.html) replace(region, html, state);
          state.html = html;
        });
      })
      .catch(function () { /* the server is away; try again later */ })
      .then(function () { schedule(region, state); });
  }

  function schedule(region, state) {
    if (!state.stopped) setTimeout(function () { refresh(region, state); }, PERIOD_MS);
  }

  function stop(region, state, why) {
    state.stopped = true;
    var notice = document.createElement("p");
    notice.className = "live-stopped";
    notice.setAttribute("role", "status");
    notice.textContent = why;
    region.parentNode.insertBefore(notice, region);
  }

  // Swap the content, keeping keyboard focus on the same control, and the scroll position
  // of each scrolling table, when they are still there.
  function replace(region, html, state) {
    var focused = document.activeElement;
    var key = focused && region.contains(focused) ? focusKey(focused) : null;
    var scrolled = [];
    region.querySelectorAll(".table-wrap").forEach(function (wrap) {
      var wrapKey = focusKey(wrap);
      if (wrapKey && (wrap.scrollLeft || wrap.scrollTop)) {
        scrolled.push([wrapKey, wrap.scrollLeft, wrap.scrollTop]);
      }
    });
    region.innerHTML = html;
    scrolled.forEach(function (kept) {
      var wrap = region.querySelector(kept[0]);
      if (wrap) { wrap.scrollLeft = kept[1]; wrap.scrollTop = kept[2]; }
    });
    if (key) {
      var again = region.querySelector(key);
      if (again) again.focus({ preventScroll: true });
    }
    announce(region, state);
  }

  function focusKey(element) {
    if (element.id) return "#" + CSS.escape(element.id);
    var href = element.getAttribute("href");
    if (href) return '[href="' + CSS.escape(href) + '"]';
    // A scrolling table region is named by the heading that labels it, or by its label.
    var heading = element.getAttribute("aria-labelledby");
    if (heading) return '[aria-labelledby="' + CSS.escape(heading) + '"]';
    var label = element.getAttribute("aria-label");
    if (label) return '[aria-label="' + CSS.escape(label) + '"]';
    return null;
  }

  // Say a changed summary (a run's status) to screen readers; not the one the page
  // opened with, which they have read already.
  function announce(region, state) {
    var summary = region.querySelector("[data-summary]");
    var target = document.querySelector("[data-announce]");
    if (!summary || !target) return;
    var text = summary.getAttribute("data-summary");
    if (text !== state.summary && target.textContent !== text) target.textContent = text;
    state.summary = text;
  }

  // A notice ("Cancelled every unfinished job of this run.") comes once, in the address
  // the button's redirect led to: take it out, so that a reload does not say it again.
  function forgetNotice() {
    var url = new URL(window.location.href);
    if (!url.searchParams.has("notice")) return;
    url.searchParams.delete("notice");
    window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
  }

  // A button that cannot be undone (cancel) asks first: its form says what in data-confirm.
  // Without this script the button acts at once, as a plain form does.
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", function () {
    forgetNotice();
    var regions = document.querySelectorAll("[data-live]");
    for (var i = 0; i < regions.length; i++) {
      var opened = regions[i].querySelector("[data-summary]");
      var state = {
        etag: null,
        stopped: false,
        html: null,
        summary: opened ? opened.getAttribute("data-summary") : null,
      };
      regions[i].setAttribute("data-live-active", "");
      schedule(regions[i], state);
    }
  });
})();
