// Compare mode (/?compare=A,B, or the Compare button): a swipe between two jobs' imagery and overlays, job A left
// of the handle and job B right of it, with the tiles whose class changed between them (tileclass diff) outlined
// on both: black for a confident change, dashed orange for an uncertain one. Each job's layers sit in a pane of
// their own, clipped at the handle as leaflet-side-by-side does (a CSS clip in the panes' layer coordinates, set
// again whenever the map moves). The outlines come from /api/diffs/A/B/changes for the box in view; far out, where
// a box holds more than LIMIT changed tiles, the diff overlay (/overlay/diff/A/B/...) shows them instead.
"use strict";

(() => {
  const { map, state: page, api, say } = window.tileclassMap;
  const $ = (id) => document.getElementById(id);
  const LIMIT = 2000;
  const compare = {
    pair: null, layers: {}, sides: {}, outlines: null, overview: null, position: 0.5, shown: 0, truncated: false,
    tiles: { a: { loaded: 0, failed: 0 }, b: { loaded: 0, failed: 0 } },
  };
  window.tileclassMap.compare = compare;  // for people and tests

  function parsePair(value) {
    const pair = String(value || "").split(",").map((part) => Number(part.trim()));
    return pair.length === 2 && pair.every((id) => Number.isInteger(id) && id > 0) && pair[0] !== pair[1]
      ? pair : null;
  }

  function pane(name, zIndex) {
    (map.getPane(name) || map.createPane(name)).style.zIndex = zIndex;
  }

  function counted(layer, side) {
    layer.on("tileload", () => { compare.tiles[side].loaded += 1; });
    layer.on("tileerror", () => { compare.tiles[side].failed += 1; });
    return layer;
  }

  function sideLayers(side, layers) {
    const name = `compare-${side}`;
    const { zoom } = layers;
    // As app.js does: no imagery is asked for outside the job's extent (drawn in by about a centimetre).
    const bounds = layers.bounds ? L.latLngBounds([[layers.bounds[1] + 1e-7, layers.bounds[0] + 1e-7],
      [layers.bounds[3] - 1e-7, layers.bounds[2] - 1e-7]]) : null;
    const found = [counted(L.tileLayer(layers.imagery, {
      pane: name, minNativeZoom: zoom, maxNativeZoom: zoom, minZoom: Math.max(zoom - 3, 0), maxZoom: 22,
      ...(bounds ? { bounds } : {}),
      attribution: `left: job ${compare.pair[0]} · right: job ${compare.pair[1]}`,
    }), side)];
    if (layers.overlay) {
      found.push(counted(L.tileLayer(layers.overlay, {
        pane: name, maxZoom: 22, opacity: $("opacity").value / 100,
      }), side));
    }
    return found;
  }

  function clip() {  // job A's pane left of the handle, job B's right of it
    if (!compare.pair || !map.getPane("compare-b")) return;
    const size = map.getSize();
    const nw = map.containerPointToLayerPoint([0, 0]);
    const se = map.containerPointToLayerPoint(size);
    const cut = map.containerPointToLayerPoint([size.x * compare.position, 0]).x;
    map.getPane("compare-a").style.clip = `rect(${nw.y}px, ${cut}px, ${se.y}px, ${nw.x}px)`;
    map.getPane("compare-b").style.clip = `rect(${nw.y}px, ${se.x}px, ${se.y}px, ${cut}px)`;
    $("compare-divider").style.left = `${100 * compare.position}%`;
  }

  async function outline() {
    if (!compare.overview) return;  // not comparing, or not started yet
    const [a, b] = compare.pair;
    const bounds = map.getBounds();
    const clamp = (value, limit) => Math.max(-limit, Math.min(limit, value)).toFixed(6);
    const box = [clamp(bounds.getWest(), 180), clamp(bounds.getSouth(), 85.0511), clamp(bounds.getEast(), 180),
      clamp(bounds.getNorth(), 85.0511)].join(",");
    const found = await api(`/api/diffs/${a}/${b}/changes?bbox=${box}&limit=${LIMIT}`);
    const features = found.tiles.map((tile) => {
      const [west, south, east, north] = tile.bounds;
      return L.rectangle([[south, west], [north, east]], {
        pane: "compare-changes", fill: false, weight: 2, interactive: false,
        color: tile.uncertain ? "#b45309" : "#111", dashArray: tile.uncertain ? "4 4" : null,
      });
    });
    if (compare.outlines) map.removeLayer(compare.outlines);
    compare.outlines = L.layerGroup(found.truncated ? [] : features).addTo(map);
    compare.overview.setOpacity(found.truncated ? 0.8 : 0);
    compare.shown = found.truncated ? 0 : features.length;
    compare.truncated = found.truncated;
  }

  async function start(pair) {
    compare.pair = pair;
    page.comparing = true;  // app.js leaves the map to this mode
    for (const layer of [page.imagery, page.overlay]) if (layer) map.removeLayer(layer);
    const [a, b] = pair;
    const [first, second, report] = await Promise.all([api(`/api/jobs/${a}/layers`), api(`/api/jobs/${b}/layers`),
      api(`/api/diffs/${a}/${b}`)]);
    compare.layers = { a: first, b: second };
    // Every pane first: adding a layer can move the map (its zoom limits), which clips both panes.
    pane("compare-a", 250);
    pane("compare-b", 251);
    pane("compare-changes", 450);
    for (const side of ["a", "b"]) compare.sides[side] = sideLayers(side, compare.layers[side]).map((l) => l.addTo(map));
    compare.overview = L.tileLayer(`/overlay/diff/${a}/${b}/{z}/{x}/{y}.png`, {
      pane: "compare-changes", maxZoom: 22, opacity: 0,
    }).addTo(map);
    document.body.classList.add("comparing");
    $("compare-bar").hidden = false;
    $("compare-summary").textContent = `job ${a} ← → job ${b}: ${report.changed.tiles.toLocaleString()} changed, `
      + `${report.uncertain_change.tiles.toLocaleString()} uncertain, of ${report.compared_tiles.toLocaleString()}`
      + " tiles both classified";
    if (first.bounds) {
      const [west, south, east, north] = first.bounds;
      map.fitBounds([[south, west], [north, east]], { maxZoom: first.zoom ?? 18 });
    }
    clip();
    await outline();
  }

  $("compare-range").addEventListener("input", (event) => {
    compare.position = event.target.value / 100;
    clip();
  });
  for (const name of ["mousedown", "touchstart", "pointerdown", "dblclick"]) {  // the handle does not pan the map
    $("compare-range").addEventListener(name, (event) => event.stopPropagation());
  }
  map.on("move", clip);
  map.on("moveend", () => { outline().catch((error) => say(error.message)); });
  $("opacity").addEventListener("input", (event) => {
    for (const side of ["a", "b"]) (compare.sides[side] || []).slice(1).forEach((l) => l.setOpacity(event.target.value / 100));
  });
  $("compare-open").addEventListener("click", () => {
    const asked = parsePair(prompt("Compare two jobs: JOB_A,JOB_B", `${page.job ?? ""},`));
    if (asked) location.search = `?compare=${asked.join(",")}`;
  });

  const asked = parsePair(new URLSearchParams(location.search).get("compare"));
  if (asked) {
    page.comparing = true;
    start(asked).catch((error) => say(error.message));
  }
})();
