// Annotator page: one triplet at a time, arrow keys or clicks, undo, progress. Talks to the JSON API
// with the page's CSRF token; every answer waits for the server's acknowledgement before the next.
"use strict";
(function () {
  const base = document.querySelector('meta[name="api-base"]').content;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  let item = null, shownAt = 0, busy = false, started = false;

  async function call(path, body) {
    const text = JSON.stringify(body || {});
    const res = await fetch(base + path, {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: text});
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.detail || ("HTTP " + res.status));
    return data;
  }

  function status(msg) { $("status").textContent = msg || ""; }
  // data-state on <body>: "busy" while saving or loading images, "ready" when a key press will count
  function setBusy(b) { busy = b; document.body.dataset.state = b ? "busy" : "ready"; }

  function show(next) {
    item = next;
    if (!item || item.done) {
      $("task").hidden = true; $("intro").hidden = true; $("done").hidden = false;
      $("progress").textContent = "done";
      setBusy(false);
      return;
    }
    $("progress").textContent = item.answered + " answered, " + item.remaining + " left";
    $("undo").disabled = !item.can_undo;
    document.querySelectorAll(".pick").forEach((el) => el.classList.remove("chosen"));
    let loaded = 0;
    const ready = () => { loaded += 1; if (loaded === 3) { shownAt = performance.now(); setBusy(false); status(""); } };
    setBusy(true);
    for (const side of ["c", "a", "b"]) {
      const img = $("img-" + side);
      img.onload = ready; img.onerror = ready;
      img.src = base + "/img/" + item.assignment_id + "/" + side;
    }
  }

  async function answer(side) {
    if (busy || !item || item.done) return;
    setBusy(true);
    $("pick-" + side).classList.add("chosen");
    const rt = Math.max(0, Math.min(3600000, Math.round(performance.now() - shownAt)));
    status("saving...");
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await call("/api/vote", {assignment_id: item.assignment_id, answer: side, rt_ms: rt});
        show(r.next); return;
      } catch (e) {
        if (attempt >= 4) { status("could not save: " + e.message + " (reload the page)"); setBusy(false); return; }
        await new Promise((ok) => setTimeout(ok, 500 * (attempt + 1)));
      }
    }
  }

  async function undo() {
    if (busy || !item || !item.can_undo) return;
    setBusy(true); status("undoing...");
    try { const r = await call("/api/undo"); show(r.next); status(r.undone ? "last answer undone" : "nothing to undo"); }
    catch (e) { status("undo failed: " + e.message); setBusy(false); }
  }

  async function start() {
    if (started) { $("intro").hidden = true; $("task").hidden = false; return; }
    started = true;
    $("intro").hidden = true; $("task").hidden = false;
    try { show(await call("/api/next")); } catch (e) { status("cannot load: " + e.message); }
  }

  $("start").addEventListener("click", start);
  $("pick-a").addEventListener("click", () => answer("a"));
  $("pick-b").addEventListener("click", () => answer("b"));
  $("undo").addEventListener("click", undo);
  $("help").addEventListener("click", () => { $("task").hidden = true; $("intro").hidden = false; });
  document.addEventListener("keydown", (ev) => {
    if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
    if (!$("intro").hidden) { if (ev.key === "Enter") { ev.preventDefault(); start(); } return; }
    if (ev.key === "ArrowLeft") { ev.preventDefault(); answer("a"); }
    else if (ev.key === "ArrowRight") { ev.preventDefault(); answer("b"); }
    else if (ev.key === "Backspace" || ev.key === "u") { ev.preventDefault(); undo(); }
  });
})();
