// Live progress of the request the page waits for, from /events (server-sent
// events); when it ends, the page moves on to its result. Without this
// script, the "Continue" button does the same.
(function () {
  "use strict";
  var list = document.getElementById("progress");
  if (!list || !window.EventSource) { return; }
  var es = new EventSource("/events");
  es.addEventListener("progress", function (e) {
    var kind = e.data;
    var text = list.dataset[kind];
    if (!text || list.querySelector("[data-kind='" + kind + "']")) { return; }
    var li = document.createElement("li");
    li.textContent = text;
    li.dataset.kind = kind;
    if (kind === "failed") { li.className = "failed"; }
    list.appendChild(li);
  });
  es.addEventListener("done", function (e) {
    es.close();
    window.location.assign(e.data);
  });
})();
