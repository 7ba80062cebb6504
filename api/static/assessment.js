// The map page's assessment mode: the job's accuracy-assessment sample (drawn by 'tileclass assess sample'), one
// tile at a time, with its imagery alone. The map's class is never shown, neither in the panel nor on the map (the
// overlay and the tile popups are off while the mode is open), so the labeller is not swayed by what the map says.
// The labeller picks the reference class (its key, 1-9 and 0 for the tenth, or a click), which is written through
// POST /api/assessments/{job}/labels into the table 'tileclass assess label' fills, and the next unlabelled tile
// follows. N or the right arrow goes to the next tile, P or the left arrow back (to change a label).
//
// Writes need this server's token, as the review queue's do: the page's cookie and the CSRF token that
// GET /api/session gives, sent as X-CSRF-Token.
"use strict";

(() => {
  const { map, state: page, api, say, showLayers } = window.tileclassMap;
  const $ = (id) => document.getElementById(id);
  const LABELLER_KEY = "tileclass.reviewer";  // one name per browser, shared with the review queue
  const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"];  // the n-th class's key

  const assessment = {
    open: false, job: null, classes: [], tiles: [], index: 0, labelled: 0, unlabelled: 0, csrf: null, busy: false,
    done: [], highlight: null,
  };
  window.tileclassMap.assessment = assessment;  // for people poking at the page (and its browser test)

  const current = () => assessment.tiles[assessment.index] || null;

  function labeller() {
    return (localStorage.getItem(LABELLER_KEY) || "").trim() || "web";
  }

  function status(text) { $("assess-status").textContent = text; }

  function progress() {
    const total = assessment.tiles.length;
    $("assess-progress").textContent = total ? `${assessment.labelled} / ${total} labelled` : "";
  }

  async function signIn() {
    const session = await api("/api/session");
    assessment.csrf = session.signed_in ? session.csrf_token : null;
    $("assess-signin").hidden = session.signed_in;
    $("assess-login").href = `${session.login}?next=${encodeURIComponent(location.pathname + location.search)}`;
    return session.signed_in;
  }

  // The first tile without a reference label from ``start`` on, wrapping round; -1 when every one has its label.
  function nextUnlabelled(start) {
    const count = assessment.tiles.length;
    for (let step = 0; step < count; step += 1) {
      const index = (start + step) % count;
      if (assessment.tiles[index].reference === null) return index;
    }
    return -1;
  }

  async function load() {
    const sample = await api(`/api/assessments/${assessment.job}`);
    Object.assign(assessment, { classes: sample.classes, tiles: sample.tiles, labelled: sample.labelled,
      unlabelled: sample.unlabelled });
    assessment.index = Math.max(nextUnlabelled(0), 0);
    show();
  }

  function show() {
    const tile = current();
    progress();
    $("assess-item").hidden = !tile || !assessment.csrf;
    if (assessment.highlight) map.removeLayer(assessment.highlight);
    assessment.highlight = null;
    if (!tile || !assessment.csrf) return;
    status(assessment.unlabelled ? "" : `all ${assessment.tiles.length} labelled: 'tileclass assess report `
      + `${assessment.job}' gives the accuracy and the areas`);
    $("assess-image").src = tile.imagery;
    $("assess-tile").textContent = `tile ${tile.tile} · ${tile.position} of ${assessment.tiles.length}`;
    $("assess-given").textContent = tile.reference === null ? "" : `labelled ${tile.reference}`;
    const [west, south, east, north] = tile.bounds;
    const bounds = L.latLngBounds([[south, west], [north, east]]);
    assessment.highlight = L.rectangle(bounds, { color: "#ffdd00", weight: 3, fill: false, dashArray: "6 4" })
      .addTo(map);
    map.fitBounds(bounds, { maxZoom: tile.z, padding: [40, 40] });
    $("assess-classes").replaceChildren(...assessment.classes.map((label, n) => {
      const button = Object.assign(document.createElement("button"), { type: "button" });
      button.dataset.label = label;
      if (n < KEYS.length) button.append(Object.assign(document.createElement("kbd"), { textContent: KEYS[n] }), " ");
      button.append(label);
      button.classList.toggle("chosen", label === tile.reference);
      button.addEventListener("click", () => { button.blur(); pick(label); });
      const item = document.createElement("li");
      item.append(button);
      return item;
    }));
  }

  async function pick(label) {
    const tile = current();
    if (!tile || assessment.busy) return;
    assessment.busy = true;
    try {
      const headers = { "Content-Type": "application/json", "X-CSRF-Token": assessment.csrf || "" };
      const body = JSON.stringify({ labels: [{ tile: tile.tile, reference: label }], author: labeller() });
      const answer = await api(`/api/assessments/${assessment.job}/labels`, { method: "POST", headers, body });
      tile.reference = label;
      Object.assign(assessment, { labelled: answer.labelled, unlabelled: answer.unlabelled });
      assessment.done.push({ tile: tile.tile, reference: label, author: labeller() });
      const next = nextUnlabelled(assessment.index + 1);
      if (next >= 0) assessment.index = next;
      show();
    } catch (error) {
      if (error.status === 403) await signIn();  // a stale CSRF token: take the current one, then try again
      say(error.message);
    } finally {
      assessment.busy = false;
    }
  }

  function move(step) {
    const index = assessment.index + step;
    if (index < 0 || index >= assessment.tiles.length) return;
    assessment.index = index;
    show();
  }

  function hideLabels() {  // imagery only: no overlay, no popup telling the map's class
    page.assessing = true;
    if (page.overlay) map.removeLayer(page.overlay);
    page.overlay = null;
    map.closePopup();
  }

  async function open() {
    if (page.job === null) { say("pick a job to assess"); return; }
    if (window.tileclassMap.review && window.tileclassMap.review.open) $("review-close").click();
    assessment.open = true;
    Object.assign(assessment, { job: page.job, tiles: [], index: 0, labelled: 0, unlabelled: 0, done: [] });
    hideLabels();
    document.body.classList.add("assessing");
    $("assessment").hidden = false;
    $("assessor").value = labeller();
    status("");
    try {
      if (await signIn()) await load(); else show();
    } catch (error) {
      status(error.message);  // 404: the job has no sample yet, and the message says how to draw one
      show();
    }
  }

  function close() {
    if (!assessment.open) return;
    assessment.open = false;
    document.body.classList.remove("assessing");
    $("assessment").hidden = true;
    if (assessment.highlight) map.removeLayer(assessment.highlight);
    assessment.highlight = null;
    page.assessing = false;
    if (page.layers) showLayers();  // the overlay back
  }

  function onKey(event) {
    if (!assessment.open || assessment.busy || event.ctrlKey || event.altKey || event.metaKey) return;
    const target = event.target;
    if (target.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName)) return;
    if (!current() || !assessment.csrf) return;
    const key = event.key;
    if (KEYS.includes(key) && KEYS.indexOf(key) < assessment.classes.length) {
      event.preventDefault();
      pick(assessment.classes[KEYS.indexOf(key)]);
    } else if (["n", "N", "ArrowRight"].includes(key)) {
      event.preventDefault();  // not the map's own arrow-key panning
      move(1);
    } else if (["p", "P", "ArrowLeft"].includes(key)) {
      event.preventDefault();
      move(-1);
    }
  }

  $("assess-open").addEventListener("click", (event) => { event.currentTarget.blur(); open(); });
  $("assess-close").addEventListener("click", close);
  $("review-open").addEventListener("click", close);
  $("assess-next").addEventListener("click", (event) => { event.currentTarget.blur(); move(1); });
  $("assess-previous").addEventListener("click", (event) => { event.currentTarget.blur(); move(-1); });
  $("assessor").addEventListener("change", (event) => {
    const name = event.target.value.trim();
    if (name && name !== "web") localStorage.setItem(LABELLER_KEY, name); else localStorage.removeItem(LABELLER_KEY);
    event.target.value = labeller();
  });
  $("job-picker").addEventListener("change", close);
  document.addEventListener("keydown", onKey);
})();
