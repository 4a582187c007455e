// Live updates for the dtk dashboard, written for it (no framework).
//
// A live page's <main> names the state index it shows. This script asks the
// server for the same page's main part past that index
// (?fragment=1&index=N); the server holds the request until the state moves
// (or 25 s pass) and answers with fresh HTML rendered from its templates,
// which replaces the old. A 401, 403 or 404 reloads the page, which then
// shows the sign-in or error page. Without this script the pages still
// work: they are complete when served.
const main = document.querySelector("main[data-live]");
const status = document.getElementById("live");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function show(text, ok) {
  if (status) {
    status.textContent = text;
    status.className = "live " + (ok ? "ok" : "err");
  }
}

async function follow() {
  let index = main.dataset.index || "0";
  const gap = Number(main.dataset.gap || "1000");
  for (;;) {
    try {
      const url = new URL(location.href);
      url.searchParams.set("fragment", "1");
      url.searchParams.set("index", index);
      const resp = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if ([401, 403, 404].includes(resp.status)) {
        location.reload();
        return;
      }
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      const html = await resp.text();
      const next = resp.headers.get("X-Dtk-Index");
      if (next !== index) {
        // Keep open what the reader opened.
        const open = [...main.querySelectorAll("details[open][id]")].map((d) => d.id);
        main.innerHTML = html;
        for (const id of open) document.getElementById(id)?.setAttribute("open", "");
        index = next || index;
      }
      show("live · updated " + new Date().toLocaleTimeString(), true);
      await sleep(gap);
    } catch (err) {
      show("live updates paused (" + err.message + "); retrying", false);
      await sleep(5000);
    }
  }
}

if (main) {
  show("live", true);
  follow();
}
