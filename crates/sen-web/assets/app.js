"use strict";
// Sen pages: live regions and the notification badge, over one
// Server-Sent Events stream per page. Pages work without this file; it
// only keeps them current.
//
// - An element with `data-live="topic,topic"` and an id is re-read from
//   the server (the same URL, that element only) shortly after an event
//   arrives on one of its topics.
// - `#notif-badge[data-user]` shows the unread count and follows
//   `user:{id}`.
// - <html data-live="open"> once the stream is connected (tests wait on it).
// - The avatar picker shows the chosen image before it is uploaded.
(function () {
  var pick = document.getElementById("file");
  var preview = document.getElementById("avatar-preview");
  if (pick && preview) {
    pick.addEventListener("change", function () {
      if (preview.src) { URL.revokeObjectURL(preview.src); }
      var f = pick.files && pick.files[0];
      if (f) { preview.src = URL.createObjectURL(f); preview.hidden = false; } else { preview.hidden = true; }
    });
  }
})();
(function () {
  var watchers = [];
  function on(topics, fn) {
    var timer = null;
    watchers.push({
      topics: topics,
      fire: function () { clearTimeout(timer); timer = setTimeout(fn, 150); }
    });
  }

  function reread(id) {
    fetch(location.href, { credentials: "same-origin", headers: { "X-Requested-With": "sen-live" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(id);
        var cur = document.getElementById(id);
        if (fresh && cur) { cur.replaceWith(document.importNode(fresh, true)); }
      });
  }

  document.querySelectorAll("[data-live][id]").forEach(function (el) {
    var id = el.id;
    on(el.getAttribute("data-live").split(","), function () { reread(id); });
  });

  var badge = document.getElementById("notif-badge");
  if (badge && badge.getAttribute("data-user")) {
    var count = document.getElementById("notif-count");
    var load = function () {
      fetch("/api/v1/me/notifications?unread=true&limit=1", { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (page) {
          if (page && count) { count.textContent = page.unread > 0 ? String(page.unread) : ""; }
        });
    };
    load();
    on(["user:" + badge.getAttribute("data-user")], load);
  }

  var topics = [];
  watchers.forEach(function (w) {
    w.topics.forEach(function (t) { if (topics.indexOf(t) < 0) { topics.push(t); } });
  });
  if (topics.length === 0) { return; }
  var es = null;
  function connect() {
    es = new EventSource("/api/v1/realtime/sse?topics=" + encodeURIComponent(topics.join(",")));
    es.onopen = function () { document.documentElement.setAttribute("data-live", "open"); };
    es.onmessage = function (m) {
      var frame;
      try { frame = JSON.parse(m.data); } catch (e) { return; }
      if (frame.type !== "event" && frame.type !== "reset") { return; }
      watchers.forEach(function (w) {
        if (w.topics.indexOf(frame.topic) >= 0) { w.fire(); }
      });
    };
  }
  connect();
  // A page left for another (or kept in the back/forward cache) must not
  // hold its stream: browsers allow only a few connections per server.
  window.addEventListener("pagehide", function () {
    if (es) { es.close(); es = null; }
    document.documentElement.removeAttribute("data-live");
  });
  window.addEventListener("pageshow", function (e) {
    if (e.persisted && !es) {
      connect();
      watchers.forEach(function (w) { w.fire(); });
    }
  });
})();
