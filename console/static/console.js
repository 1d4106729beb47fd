// Outrigger console: live refresh of the open page, confirmations and
// "select all". Written for this console (no library); the pages work
// without it, refreshing by hand.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var every = parseInt(document.body.getAttribute("data-refresh"), 10) || 0;

  // busy: the user is in the middle of something the refresh would undo.
  function busy() {
    var a = document.activeElement;
    if (a && a !== document.body && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(a.tagName) && a.type !== "submit") return true;
    if (main.querySelector("input[type=checkbox]:checked")) return true;
    if (main.querySelector("details[open]")) return true;
    return false;
  }

  var inflight = false;
  function refresh() {
    if (document.hidden || busy() || inflight) return;
    inflight = true;
    fetch(location.href, { headers: { "X-Console-Partial": "1" }, credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null && !busy()) {
          main.innerHTML = html;
          document.body.classList.remove("stale");
        }
      })
      .catch(function () { document.body.classList.add("stale"); })
      .finally(function () { inflight = false; });
  }
  if (every > 0) setInterval(refresh, every);

  // Confirm destructive actions: data-confirm on a form or a button.
  document.addEventListener("submit", function (e) {
    var f = e.target;
    var b = e.submitter;
    var msg = (b && b.getAttribute("data-confirm")) || f.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) e.preventDefault();
  });

  // "Select all" boxes: data-check-all names the form of the boxes.
  document.addEventListener("change", function (e) {
    var t = e.target;
    var form = t.getAttribute && t.getAttribute("data-check-all");
    if (!form) return;
    var boxes = document.querySelectorAll('input[type=checkbox][form="' + form + '"]');
    for (var i = 0; i < boxes.length; i++) boxes[i].checked = t.checked;
  });
})();
