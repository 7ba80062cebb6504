// The map page's review queue: the job's least confident answers, one at a time, each with its imagery, where it
// lies on the map and the model's top 3. The reviewer confirms the model's class (Enter or Space) or picks the right
// one (its key, 1-9 and 0 for the tenth, or a click); either is a correction written through POST /api/corrections,
// the code of 'tileclass correct', and the next answer follows. S skips one without writing.
//
// Writes need this server's token: the page's cookie (set by /login or the login URL 'tileclass serve' prints) and
// the CSRF token that GET /api/session gives, sent as X-CSRF-Token with every write.
"use strict";

(() => {
  const { map, state: page, api, say } = window.tileclassMap;
  const $ = (id) => document.getElementById(id);
  const PAGE = 20;  // answers asked for at a time
  const REVIEWER_KEY = "tileclass.reviewer";
  const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"];  // the n-th class's key

  const review = {
    open: false, job: null, model: null, classes: [], answers: [], index: 0, next: null, csrf: null,
    busy: false, done: [], highlight: null,
  };
  window.tileclassMap.review = review;  // for people poking at the page (and its browser test)

  const current = () => review.answers[review.index] || null;

  function reviewer() {
    return (localStorage.getItem(REVIEWER_KEY) || "").trim() || "web";
  }

  async function signIn() {
    const session = await api("/api/session");
    review.csrf = session.signed_in ? session.csrf_token : null;
    $("review-signin").hidden = session.signed_in;
    $("review-login").href = `${session.login}?next=${encodeURIComponent(location.pathname + location.search)}`;
    return session.signed_in;
  }

  async function load(after = null) {
    const query = new URLSearchParams({ limit: PAGE });
    if (after) query.set("after", after);
    const queue = await api(`/api/jobs/${review.job}/review?${query}`);
    Object.assign(review, { model: queue.model, classes: queue.classes, answers: queue.answers, index: 0,
      next: queue.next });
    show();
  }

  function status(text) { $("review-status").textContent = text; }

  function show() {
    const answer = current();
    $("review-item").hidden = !answer || !review.csrf;
    if (review.highlight) map.removeLayer(review.highlight);
    review.highlight = null;
    if (!review.csrf) { status(""); return; }
    if (!answer) {
      status(`${review.done.length ? `${review.done.length} reviewed; ` : ""}nothing left to review in job `
        + `${review.job}`);
      return;
    }
    status(`${review.done.length} reviewed · the least confident first`);
    $("review-image").src = answer.imagery;
    $("review-tile").textContent = `tile ${answer.tile}`;
    const [west, south, east, north] = answer.bounds;
    const bounds = L.latLngBounds([[south, west], [north, east]]);
    review.highlight = L.rectangle(bounds, { color: "#ffdd00", weight: 3, fill: false, dashArray: "6 4" })
      .addTo(map);
    map.fitBounds(bounds, { maxZoom: answer.z, padding: [40, 40] });
    $("review-said").textContent = `the model says ${answer.label}, ${(100 * answer.confidence).toFixed(1)}%`
      + `${answer.uncertain ? " (uncertain)" : ""}`
      + `${answer.coverage !== null && answer.coverage < 1 ? ` · ${(100 * answer.coverage).toFixed(0)}% data` : ""}`;
    $("review-top").replaceChildren(...answer.top.map((entry) => {
      const row = document.createElement("tr");
      row.append(Object.assign(document.createElement("td"), { textContent: entry.label }),
        Object.assign(document.createElement("td"), { textContent: `${(100 * entry.probability).toFixed(1)}%` }));
      return row;
    }));
    $("review-confirm").textContent = `Confirm ${answer.label}`;
    $("review-confirm").append(" ", Object.assign(document.createElement("kbd"), { textContent: "Enter" }));
    $("review-classes").replaceChildren(...review.classes.map((label, n) => {
      const button = Object.assign(document.createElement("button"), { type: "button" });
      button.dataset.label = label;
      if (n < KEYS.length) button.append(Object.assign(document.createElement("kbd"), { textContent: KEYS[n] }), " ");
      button.append(label);
      button.classList.toggle("said", label === answer.label);
      button.addEventListener("click", () => { button.blur(); decide(label); });
      const item = document.createElement("li");
      item.append(button);
      return item;
    }));
  }

  async function decide(label) {
    const answer = current();
    if (!answer || review.busy) return;
    review.busy = true;
    try {
      const headers = { "Content-Type": "application/json", "X-CSRF-Token": review.csrf || "" };
      const body = JSON.stringify({ tile: answer.tile, label, model: review.model, author: reviewer() });
      await api("/api/corrections", { method: "POST", headers, body });
      review.done.push({ tile: answer.tile, label, author: reviewer() });
      await advance();
    } catch (error) {
      if (error.status === 403) await signIn();  // a stale CSRF token: take the current one, then try again
      say(error.message);
    } finally {
      review.busy = false;
    }
  }

  async function advance() {
    review.index += 1;
    if (review.index < review.answers.length) show();
    else if (review.next) await load(review.next);
    else { review.answers = []; show(); }
  }

  async function open() {
    if (page.job === null) { say("pick a job to review"); return; }
    review.open = true;
    Object.assign(review, { job: page.job, answers: [], index: 0, next: null, done: [] });
    document.body.classList.add("reviewing");
    $("review").hidden = false;
    $("reviewer").value = reviewer();
    try {
      if (await signIn()) await load(); else show();
    } catch (error) {
      say(error.message);
    }
  }

  function close() {
    review.open = false;
    document.body.classList.remove("reviewing");
    $("review").hidden = true;
    if (review.highlight) map.removeLayer(review.highlight);
    review.highlight = null;
  }

  function onKey(event) {
    if (!review.open || review.busy || event.ctrlKey || event.altKey || event.metaKey) return;
    const target = event.target;
    if (target.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName)) return;
    const answer = current();
    if (!answer || !review.csrf) return;
    let label = null;
    if (event.key === "Enter" || event.key === " ") label = answer.label;
    else if (KEYS.includes(event.key)) label = review.classes[KEYS.indexOf(event.key)] || null;
    else if (event.key === "s" || event.key === "S") {
      event.preventDefault();
      advance().catch((error) => say(error.message));
      return;
    }
    if (label === null) return;
    event.preventDefault();  // no button click, no page scroll
    decide(label);
  }

  $("review-open").addEventListener("click", (event) => { event.currentTarget.blur(); open(); });
  $("review-close").addEventListener("click", close);
  $("review-confirm").addEventListener("click", (event) => {
    event.currentTarget.blur();
    if (current()) decide(current().label);
  });
  $("review-skip").addEventListener("click", (event) => {
    event.currentTarget.blur();
    advance().catch((error) => say(error.message));
  });
  $("reviewer").addEventListener("change", (event) => {
    const name = event.target.value.trim();
    if (name && name !== "web") localStorage.setItem(REVIEWER_KEY, name); else localStorage.removeItem(REVIEWER_KEY);
    event.target.value = reviewer();
  });
  $("job-picker").addEventListener("change", () => { if (review.open) close(); });
  document.addEventListener("keydown", onKey);
})();
