// The connectivity view of `policyctl graph -o html`: the graph embedded in #flow-data, drawn
// with the vendored Cytoscape.js at the positions computed by policyctl (no layout runs here, so
// a page of a hundred namespaces opens at once). Nothing is fetched: the page is self-contained.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("flow-data").textContent);
  const state = { chunks: JSON.parse(document.getElementById("flow-explain").textContent), explain: new Map(),
    selected: null };
  const byId = (id) => document.getElementById(id);
  const nodes = new Map(data.nodes.map((n) => [n.id, n]));
  const large = data.edges.length > 1000 || data.nodes.length > 500;

  const elements = [];
  data.namespaces.forEach((ns, i) => {
    elements.push({ group: "nodes", data: { id: "ns" + i, label: ns, kind: "namespace" }, selectable: false });
  });
  const nsId = new Map(data.namespaces.map((ns, i) => [ns, "ns" + i]));
  data.nodes.forEach((n) => {
    elements.push({
      group: "nodes",
      data: { id: n.id, label: n.label, kind: "workload", parent: nsId.get(n.namespace), host: n.host_network,
        width: n.width },
      position: { x: n.x, y: n.y },
    });
  });
  data.edges.forEach((e) => {
    elements.push({ group: "edges", data: { id: e.id, source: e.source, target: e.target, label: e.ports,
      chunk: e.chunk }, classes: large ? "hidden" : "" });
  });

  const cy = cytoscape({
    container: byId("cy"),
    elements: elements,
    layout: { name: "preset", fit: true, padding: 20 },
    minZoom: 0.02,
    maxZoom: 4,
    wheelSensitivity: 0.3,
    hideEdgesOnViewport: large,
    textureOnViewport: large,
    pixelRatio: large ? 1 : "auto",
    style: [
      { selector: "node[kind = 'workload']", style: {
        shape: "round-rectangle", width: "data(width)", height: 44, "background-color": "#fff8c4",
        "border-width": 1, "border-color": "#8a7a2a", label: "data(label)", "font-size": 15,
        "text-valign": "center", "text-halign": "center", "text-wrap": "ellipsis", "text-max-width": 220,
        "min-zoomed-font-size": 6 } },
      { selector: "node[?host]", style: { "background-color": "#e4e4e4" } },
      { selector: "node[kind = 'namespace']", style: {
        shape: "round-rectangle", "background-color": "#eef4fb", "background-opacity": 0.7,
        "border-width": 1, "border-color": "#6c8db5", label: "data(label)", "font-size": 28,
        "font-weight": "bold", "text-valign": "top", "text-halign": "center", padding: 18,
        "min-zoomed-font-size": 4 } },
      { selector: "edge", style: {
        width: 1.2, "curve-style": large ? "straight" : "bezier", "line-color": "#7d8a99",
        "target-arrow-shape": "triangle", "target-arrow-color": "#7d8a99", "arrow-scale": 0.8,
        opacity: large ? 0.35 : 0.8, label: "data(label)", "font-size": 10, "text-rotation": "autorotate",
        "text-background-color": "#ffffff", "text-background-opacity": 0.8, "min-zoomed-font-size": 9 } },
      { selector: ".faded", style: { opacity: 0.08 } },
      { selector: "edge.hidden", style: { display: "none" } },
      { selector: "edge.near", style: { opacity: 1, width: 4, "line-color": "#2f6fb5", "target-arrow-color": "#2f6fb5",
        "z-index": 10, display: "element" } },
      { selector: "node.match", style: { "border-width": 4, "border-color": "#d9480f" } },
      { selector: "node:selected", style: { "border-width": 4, "border-color": "#2f6fb5" } },
      { selector: "edge:selected", style: { display: "element", opacity: 1, width: 5, "line-color": "#d9480f",
        "target-arrow-color": "#d9480f", "z-index": 20, "min-zoomed-font-size": 0 } },
    ],
  });

  function text(tag, content, className) {
    const element = document.createElement(tag);
    element.textContent = content;
    if (className) element.className = className;
    return element;
  }

  function name(id) {
    const n = nodes.get(id);
    return n.namespace + "/" + n.label;
  }

  async function explanations(chunk) {
    if (!state.explain.has(chunk)) {
      const packed = state.chunks[chunk];
      if (packed === undefined) return {};
      const bytes = Uint8Array.from(atob(packed), (c) => c.charCodeAt(0));
      const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
      state.explain.set(chunk, JSON.parse(await new Response(stream).text()));
    }
    return state.explain.get(chunk);
  }

  // Restyling every element costs seconds at a hundred namespaces, so a large graph only
  // marks the selection's own flows; a small one also fades everything else.
  function highlight(collection) {
    cy.batch(() => {
      cy.elements(".faded, .near").removeClass("faded near");
      if (collection) {
        if (!large) cy.elements().not(collection).not(collection.ancestors()).addClass("faded");
        collection.edges().addClass("near");
      }
    });
  }

  function flowList(title, edges, end) {
    const panel = byId("details");
    panel.appendChild(text("h3", title + " (" + edges.length + ")"));
    const list = document.createElement("ul");
    list.className = "flows";
    edges.forEach((edge) => {
      const item = text("li", name(edge.data(end)) + ": " + edge.data("label"));
      item.dataset.edge = edge.id();
      item.addEventListener("click", () => selectEdge(edge.id(), true));
      list.appendChild(item);
    });
    panel.appendChild(list);
  }

  function selectNode(id, centre) {
    const node = cy.getElementById(id);
    const n = nodes.get(id);
    if (node.empty() || !n) return false;
    state.selected = id;
    cy.elements().unselect();
    node.select();
    highlight(node.closedNeighborhood());
    if (centre) cy.animate({ center: { eles: node }, zoom: Math.max(cy.zoom(), 0.8) }, { duration: 200 });
    const panel = byId("details");
    panel.replaceChildren();
    panel.appendChild(text("h2", name(id)));
    panel.appendChild(text("p", n.pods + (n.pods === 1 ? " pod" : " pods") + (n.host_network ? ", hostNetwork" : "")));
    panel.appendChild(text("p", "members: " + n.members.join(", "), "members"));
    if (n.inner !== null) panel.appendChild(text("p", "between members: " + n.inner));
    flowList("may connect to", node.outgoers("edge").toArray(), "target");
    flowList("may be reached from", node.incomers("edge").toArray(), "source");
    return true;
  }

  async function selectEdge(id, centre) {
    const edge = cy.getElementById(id);
    if (edge.empty()) return false;
    state.selected = id;
    cy.elements().unselect();
    edge.select();
    highlight(edge.union(edge.connectedNodes()));
    if (centre) cy.animate({ fit: { eles: edge.connectedNodes(), padding: 80 } }, { duration: 200 });
    const panel = byId("details");
    panel.replaceChildren();
    panel.appendChild(text("h2", name(edge.data("source")) + " → " + name(edge.data("target"))));
    panel.appendChild(text("p", "allowed: " + edge.data("label")));
    const pre = text("pre", "explaining…", "explain");
    pre.id = "explain";
    panel.appendChild(pre);
    const found = (await explanations(edge.data("chunk")))[id];
    if (state.selected !== id) return true;
    pre.textContent = found === undefined ? "no explanation embedded (graph --no-explain)" : found;
    return true;
  }

  function search(query) {
    const wanted = query.trim().toLowerCase();
    const results = byId("results");
    results.replaceChildren();
    cy.nodes().removeClass("match");
    if (!wanted) return [];
    const found = data.nodes.filter((n) =>
      (n.namespace + "/" + n.label).toLowerCase().includes(wanted) ||
      n.members.some((m) => m.toLowerCase().includes(wanted)));
    cy.batch(() => found.forEach((n) => cy.getElementById(n.id).addClass("match")));
    found.slice(0, 100).forEach((n) => {
      const item = text("li", name(n.id) + (n.pods > 1 ? " (" + n.pods + " pods)" : ""));
      item.dataset.node = n.id;
      item.addEventListener("click", () => selectNode(n.id, true));
      results.appendChild(item);
    });
    if (found.length > 100) results.appendChild(text("li", "… " + (found.length - 100) + " more", "more"));
    byId("found").textContent = found.length + " found";
    return found.map((n) => n.id);
  }

  cy.on("tap", "node[kind = 'workload']", (event) => selectNode(event.target.id(), false));
  cy.on("tap", "edge", (event) => selectEdge(event.target.id(), false));
  function clear() {
    state.selected = null;
    cy.elements().unselect();
    highlight(null);
    byId("details").replaceChildren(text("p", "Click a workload to see its flows, or a flow to see why it is allowed."));
  }
  cy.on("tap", (event) => {
    const target = event.target;
    if (target === cy || (target.isNode() && target.data("kind") === "namespace")) clear();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") clear();
  });
  const box = byId("search");
  box.addEventListener("input", () => search(box.value));
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      const first = byId("results").querySelector("li[data-node]");
      if (first) selectNode(first.dataset.node, true);
    }
  });
  byId("fit").addEventListener("click", () => cy.fit(undefined, 20));
  // A large graph opens with only the selection's flows drawn: thousands of edges at once are
  // slow to redraw on every pan and say little; the box draws them all.
  const all = byId("all-flows");
  all.checked = !large;
  all.addEventListener("change", () => cy.batch(() => cy.edges().toggleClass("hidden", !all.checked)));

  byId("status").textContent = data.nodes.length + " workload nodes in " + data.namespaces.length +
    " namespaces, " + data.edges.length + " allowed flows (" + data.asked + ", " + data.family + ")" +
    (large ? "; drawn: the selection's" : "");
  window.flowView = {
    cy: cy, selectNode: selectNode, selectEdge: selectEdge, search: search,
    rendered: cy.nodes("[kind = 'workload']").length, large: large, ready: true,
  };
  document.body.dataset.ready = "true";
})();
