// The legend's view by group: a class grouping of the job's model ('tileclass groups add', listed in the job's
// layers) chosen in the legend redraws the overlay with one colour per group (?groups=NAME) and lists the groups
// with their tile counts (the sums of their classes' counts). Unticking a group hides its classes, so the
// overlay and the downloads follow it as they follow the class filter. "classes" goes back to the classes.
"use strict";

(() => {
  const { state: page, showLayers, showLegend, updateDownloads } = window.tileclassMap;
  const $ = (id) => document.getElementById(id);

  function chosen() {
    const groupings = (page.layers && page.layers.groupings) || [];
    return groupings.find((grouping) => grouping.name === page.grouping) || null;
  }

  function offerGroupings() {
    const groupings = (page.layers && page.layers.groupings) || [];
    if (page.grouping && !chosen()) page.grouping = null;  // another job's model: back to its classes
    const picker = $("legend-view");
    picker.replaceChildren(new Option("classes", ""),
      ...groupings.map((grouping) => new Option(`groups: ${grouping.name}`, grouping.name)));
    picker.value = page.grouping || "";
    $("legend-view-choice").hidden = groupings.length === 0;
  }

  function groupItem(entry, counts) {
    const item = document.createElement("li");
    const shown = entry.classes.some((label) => !page.hidden.has(label));
    const box = Object.assign(document.createElement("input"), { type: "checkbox", checked: shown });
    box.setAttribute("aria-label", `show ${entry.group}`);
    box.addEventListener("change", () => {
      for (const label of entry.classes) if (box.checked) page.hidden.delete(label); else page.hidden.add(label);
      showLayers();
      updateDownloads();
    });
    const swatch = Object.assign(document.createElement("span"), { className: "swatch" });
    swatch.style.background = entry.colour;
    const name = Object.assign(document.createElement("span"), {
      className: "name", textContent: entry.group, title: entry.classes.join(", "),
    });
    const total = entry.classes.reduce((sum, label) => sum + (counts.get(label) || 0), 0);
    const count = Object.assign(document.createElement("span"), { className: "count", textContent: total.toLocaleString() });
    item.dataset.group = entry.group;
    item.append(box, swatch, name, count);
    return item;
  }

  function showGroups() {
    offerGroupings();
    const grouping = chosen();
    $("legend-title").textContent = grouping ? "Groups" : "Classes";
    $("legend-hint").textContent = grouping ? "Untick a group to hide its classes." : "Untick a class to hide it.";
    if (!grouping) return;
    const counts = new Map(page.layers.classes.map((entry) => [entry.label, entry.count]));
    $("legend-classes").replaceChildren(...grouping.groups.map((entry) => groupItem(entry, counts)));
  }

  document.addEventListener("tileclass:legend", showGroups);
  $("legend-view").addEventListener("change", (event) => {
    page.grouping = event.target.value || null;
    showLayers();
    showLegend(page.layers.classes);  // app.js's legend of classes, which this redraws by group if one is chosen
  });
})();
