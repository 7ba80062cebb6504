// The tileclass map page: a job's imagery with its classification overlay, a legend with per-class counts and a
// class filter, a job picker with live progress, a popup per tile, and a rectangle whose results download as
// GeoJSON or CSV. Everything comes from this server's JSON API (/docs); nothing is loaded from elsewhere but the
// basemap that the server names (TILECLASS_BASEMAP_URL, off by default).
"use strict";

(() => {
  const POLL_RUNNING_MS = 2000;
  const POLL_IDLE_MS = 10000;
  const FINISHED = new Set(["completed", "cancelled", "failed", "lost"]);
  const $ = (id) => document.getElementById(id);
  const text = (value) => String(value).replace(/[&<>"]/g, (ch) => `&#${ch.charCodeAt(0)};`);  // as HTML text

  const state = {
    job: null, layers: null, jobs: [], hidden: new Set(), imagery: null, overlay: null, basemap: null, done: -1,
    drawing: false, rectangle: null, start: null, assessing: false,  // assessing: imagery only (assessment.js)
    uncertain: "",  // the uncertain filter: "" all answers, "true" only the uncertain ones, "false" none of them
    grouping: null,  // the class grouping the overlay and legend show (groups.js), null: the classes
    comparing: false,  // compare.js shows two jobs (?compare=A,B): the job's own layers stay off
    tiles: { imagery: { loaded: 0, failed: 0 }, overlay: { loaded: 0, failed: 0 } },
  };
  const map = L.map("map", { maxZoom: 22, worldCopyJump: true }).setView([20, 0], 2);
  map.attributionControl.setPrefix("Leaflet");
  // For review.js, assessment.js, groups.js, people and tests.
  window.tileclassMap = { map, state, api, say, showLayers, showLegend, updateDownloads };

  async function api(path, options = {}) {  // options: fetch's (a write's method, headers and body)
    const response = await fetch(path, { ...options, headers: { Accept: "application/json", ...options.headers } });
    if (response.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new Error("this server needs its token");
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(body.detail || response.statusText);
      error.status = response.status;
      error.body = body;
      throw error;
    }
    return body;
  }

  function say(text) {
    const box = $("message");
    box.textContent = text;
    box.hidden = !text;
    clearTimeout(say.timer);
    if (text) say.timer = setTimeout(() => { box.hidden = true; }, 8000);
  }

  function done(job) { return job.classified + job.failed + job.empty; }

  function describe(job) {
    const total = job.total || 0;
    const share = total ? Math.round((100 * done(job)) / total) : 0;
    return `#${job.job_id} · ${job.root || "?"} · ${job.state}${FINISHED.has(job.state) ? "" : ` ${share}%`}`;
  }

  async function loadJobs() {
    state.jobs = (await api("/api/jobs?limit=200")).filter((job) => job.kind === "classify");
    const picker = $("job-picker");
    picker.replaceChildren(...state.jobs.map((job) => new Option(describe(job), job.job_id)));
    if (state.job !== null) picker.value = String(state.job);
    return state.jobs;
  }

  function showProgress(job) {
    const total = job.total || 0;
    $("job-progress").firstElementChild.style.width = `${total ? (100 * done(job)) / total : 0}%`;
    const speed = FINISHED.has(job.state) || !job.tiles_per_second ? "" : ` · ${job.tiles_per_second} tiles/s`;
    $("job-state").textContent = `${job.state} · ${job.classified.toLocaleString()} classified, `
      + `${job.failed.toLocaleString()} failed, ${job.empty.toLocaleString()} empty of ${total.toLocaleString()}`
      + speed;
  }

  function visibleLabels() {
    return state.layers.classes.map((entry) => entry.label).filter((label) => !state.hidden.has(label));
  }

  function grouped() {  // a grouping is drawn only for the model it was made for (another job may have another)
    return state.grouping && (state.layers.groupings || []).some((grouping) => grouping.name === state.grouping);
  }

  function overlayUrl() {
    const labels = state.hidden.size ? visibleLabels() : [];
    const extra = labels.map((label) => `&label=${encodeURIComponent(label)}`).join("")
      + (state.uncertain ? `&uncertain=${state.uncertain}` : "")
      + (grouped() ? `&groups=${encodeURIComponent(state.grouping)}` : "");
    return `${state.layers.overlay}${extra}&v=${state.done}`;  // v: a new URL once results change
  }

  function counted(layer, kind) {
    layer.on("tileload", () => { state.tiles[kind].loaded += 1; });
    layer.on("tileerror", () => { state.tiles[kind].failed += 1; });
    return layer;
  }

  // The job's extent as Leaflet bounds (null when it has none yet), drawn in by ``inset`` degrees on each side.
  function extent(inset = 0) {
    if (!state.layers.bounds) return null;
    const [west, south, east, north] = state.layers.bounds;
    return L.latLngBounds([[south + inset, west + inset], [north - inset, east - inset]]);
  }

  function showBasemap(basemap) {  // the server's basemap under everything, once (its URL never changes)
    if (!basemap || state.basemap) return;
    state.basemap = L.tileLayer(basemap.url, { maxZoom: 22, zIndex: 0, attribution: text(basemap.attribution) })
      .addTo(map);
  }

  function showLayers() {
    for (const layer of [state.imagery, state.overlay]) if (layer) map.removeLayer(layer);
    state.imagery = state.overlay = null;
    if (state.comparing) return;  // compare.js draws two jobs instead
    const { zoom } = state.layers;
    if (zoom === null) return;
    // The job has no imagery outside its extent: never ask for it there. Drawn in by about a centimetre, so that
    // a tile that only touches an edge (rounding in Leaflet's projection) is not asked for either.
    const bounds = extent(1e-7);
    state.imagery = counted(L.tileLayer(state.layers.imagery, {
      minNativeZoom: zoom, maxNativeZoom: zoom, minZoom: Math.max(zoom - 3, 0), maxZoom: 22, zIndex: 1,
      attribution: `imagery: job ${state.job}'s source`, ...(bounds ? { bounds } : {}),
    }), "imagery").addTo(map);
    if (state.layers.overlay && visibleLabels().length && !state.assessing) {
      state.overlay = counted(L.tileLayer(overlayUrl(), {
        maxZoom: 22, zIndex: 2, opacity: $("opacity").value / 100,
        attribution: `classes: model ${state.layers.model.slice(0, 12)}`,
      }), "overlay").addTo(map);
    }
  }

  function showLegend(classes) {
    const items = classes.map((entry) => {
      const item = document.createElement("li");
      const box = Object.assign(document.createElement("input"), { type: "checkbox", checked: !state.hidden.has(entry.label) });
      box.setAttribute("aria-label", `show ${entry.label}`);
      box.addEventListener("change", () => {
        if (box.checked) state.hidden.delete(entry.label); else state.hidden.add(entry.label);
        showLayers();
        updateDownloads();
      });
      const swatch = Object.assign(document.createElement("span"), { className: "swatch" });
      swatch.style.background = entry.colour;
      const name = Object.assign(document.createElement("span"), { className: "name", textContent: entry.label });
      const count = Object.assign(document.createElement("span"), {
        className: "count", textContent: entry.count.toLocaleString(),
      });
      item.dataset.label = entry.label;
      item.append(box, swatch, name, count);
      return item;
    });
    $("legend-classes").replaceChildren(...items);
    const { classified, failed, empty } = state.layers;
    $("legend-totals").textContent = `${classified.toLocaleString()} classified · ${failed.toLocaleString()} failed`
      + ` · ${empty.toLocaleString()} empty`;
    document.dispatchEvent(new CustomEvent("tileclass:legend"));  // groups.js redraws it by group
  }

  async function pickJob(jobId, { fit = true } = {}) {
    state.job = jobId;
    if (!state.comparing) history.replaceState(null, "", `?job=${jobId}`);
    const before = state.layers;
    state.layers = await api(`/api/jobs/${jobId}/layers`);
    showBasemap(state.layers.basemap);
    state.hidden = new Set([...state.hidden].filter((label) => state.layers.classes.some((c) => c.label === label)));
    const same = before && before.job === jobId && before.zoom === state.layers.zoom
      && before.overlay === state.layers.overlay && String(before.bounds) === String(state.layers.bounds);
    if (same && state.overlay) state.overlay.setUrl(overlayUrl()); else showLayers();
    showLegend(state.layers.classes);
    updateDownloads();
    const job = state.jobs.find((candidate) => candidate.job_id === jobId);
    if (job) { showProgress(job); state.done = done(job); }
    if (fit && state.layers.bounds && !state.comparing) map.fitBounds(extent(), { maxZoom: state.layers.zoom ?? 18 });
    if (state.layers.zoom === null) say(`job ${jobId} has no results to show yet`);
  }

  async function poll() {
    let running = false;
    try {
      const jobs = await loadJobs();
      running = jobs.some((job) => !FINISHED.has(job.state));
      const current = jobs.find((job) => job.job_id === state.job);
      if (current) {
        showProgress(current);
        if (done(current) !== state.done) {  // new results: fresh overlay tiles and legend counts
          state.done = done(current);
          await pickJob(current.job_id, { fit: state.layers === null || state.layers.bounds === null });
        }
      }
    } catch (error) {
      say(error.message);
    } finally {
      setTimeout(poll, running ? POLL_RUNNING_MS : POLL_IDLE_MS);
    }
  }

  function popupHtml(answer) {
    const tile = answer.tile ? `tile ${text(answer.tile)}` : "";
    if (answer.empty) {
      return `<div class="tile-popup"><div class="label">empty</div><div>${text(answer.reason)}</div>`
        + `<div class="meta">${tile}</div></div>`;
    }
    const top = (answer.top || []).map((entry) => `<tr><td>${text(entry.label)}</td>`
      + `<td>${(100 * entry.probability).toFixed(1)}%</td></tr>`).join("");
    const when = new Date(answer.classified_at).toLocaleString();
    // Coverage: the share of the tile's pixels that held data (null for results from before it was measured).
    const coverage = answer.coverage === null || answer.coverage === undefined ? ""
      : `<div class="coverage">coverage ${(100 * answer.coverage).toFixed(0)}%</div>`;
    const unsure = answer.uncertain ? ` <span class="uncertain">uncertain</span>` : "";
    return `<div class="tile-popup"><div class="label">${text(answer.label)}${unsure}</div>`
      + `<div>confidence ${(100 * answer.confidence).toFixed(1)}%</div>${coverage}<table>${top}</table>`
      + `<div class="meta">${tile}<br>model ${text(answer.model.slice(0, 12))} · job ${text(answer.job ?? "-")}`
      + `<br>${text(when)}</div></div>`;
  }

  async function showTile(event) {
    if (state.drawing || state.assessing || !state.layers || state.layers.zoom === null) return;
    const point = event.latlng.wrap();
    const query = new URLSearchParams({
      lon: point.lng.toFixed(7), lat: Math.max(-85.05, Math.min(85.05, point.lat)).toFixed(7),
      zoom: state.layers.zoom, model: state.layers.model, top_k: 3,
    });
    let html;
    try {
      html = popupHtml(await api(`/api/point?${query}`));
    } catch (error) {
      const where = error.body && error.body.tile ? `tile ${error.body.tile}: ` : "";
      html = `<div class="tile-popup"><div class="label">not classified</div><div class="meta">${where}`
        + `${error.status === 404 ? "no result here" : error.message}</div></div>`;
    }
    L.popup().setLatLng(event.latlng).setContent(html).openOn(map);
  }

  function updateDownloads() {
    const area = state.rectangle;
    $("downloads").hidden = !area;
    if (!area || !state.layers || state.layers.zoom === null) return;
    const bounds = area.getBounds();
    const clamp = (value, limit) => Math.max(-limit, Math.min(limit, value)).toFixed(6);
    const box = [clamp(bounds.getWest(), 180), clamp(bounds.getSouth(), 85.0511),
      clamp(bounds.getEast(), 180), clamp(bounds.getNorth(), 85.0511)].join(",");
    const labels = state.hidden.size ? visibleLabels().map((label) => `&label=${encodeURIComponent(label)}`).join("") : "";
    // The downloads follow the uncertain filter, as the overlay does.
    const unsure = state.uncertain ? `&uncertain=${state.uncertain}` : "";
    const base = `/api/bbox?bbox=${box}&zoom=${state.layers.zoom}&job=${state.job}${labels}${unsure}`;
    $("download-geojson").href = `${base}&format=geojson`;
    $("download-csv").href = `${base}&format=csv`;
  }

  function startDrawing() {
    state.drawing = true;
    map.dragging.disable();
    document.body.classList.add("drawing");
    say("drag a rectangle on the map");
  }

  map.on("mousedown", (event) => {
    if (!state.drawing) return;
    state.start = event.latlng;
    if (state.rectangle) map.removeLayer(state.rectangle);
    state.rectangle = L.rectangle([state.start, state.start], { color: "#111", weight: 2, fillOpacity: 0.05 })
      .addTo(map);
  });
  map.on("mousemove", (event) => {
    if (state.drawing && state.start) state.rectangle.setBounds([state.start, event.latlng]);
  });
  map.on("mouseup", (event) => {
    if (!state.drawing || !state.start) return;
    state.rectangle.setBounds([state.start, event.latlng]);
    state.drawing = false;
    state.start = null;
    map.dragging.enable();
    document.body.classList.remove("drawing");
    say("");
    updateDownloads();
  });
  map.on("click", showTile);

  $("draw").addEventListener("click", startDrawing);
  $("clear-area").addEventListener("click", () => {
    if (state.rectangle) map.removeLayer(state.rectangle);
    state.rectangle = null;
    updateDownloads();
  });
  $("opacity").addEventListener("input", (event) => {
    $("opacity-value").textContent = `${event.target.value}%`;
    if (state.overlay) state.overlay.setOpacity(event.target.value / 100);
  });
  $("uncertain-filter").addEventListener("change", (event) => {
    state.uncertain = event.target.value;
    showLayers();
    updateDownloads();
  });
  $("job-picker").addEventListener("change", (event) => {
    pickJob(Number(event.target.value)).catch((error) => say(error.message));
  });

  (async () => {
    try {
      const jobs = await loadJobs();
      const query = new URLSearchParams(location.search);  // compare mode's legend: its first job's
      const asked = Number(query.get("job") || (query.get("compare") || "").split(",")[0]);
      const chosen = asked || (jobs[0] && jobs[0].job_id);
      if (!chosen) { say("no classify jobs yet: start one with 'tileclass enqueue'"); return; }
      await pickJob(chosen);
    } catch (error) {
      say(error.message);
    }
    setTimeout(poll, POLL_RUNNING_MS);
  })();
})();
