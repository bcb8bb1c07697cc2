// The topology page: the lab drawn with Cytoscape.js (laid out by fCoSE), kept current by the
// lab's events (GET api/events), with the tables of hosts and checks below it and the
// actions beside it. The graph is laid out once per shape of the lab; what changes later
// (states, results, faults, impairments) changes classes and data in place.
"use strict";

(function () {
  const L = window.labctl;
  const el = L.el;
  const $ = (id) => document.getElementById(id);

  let snapshot = null;                 // the last GET api/lab
  let shape = "";                      // what the graph was laid out for
  let cy = null;
  let selected = null;                 // {kind, name} of what the details show
  const hostState = new Map();         // host -> state as the latest event or snapshot said
  const checkState = new Map();        // check -> {last, running, updates}
  const checkRows = new Map();         // check -> its row
  let partitions = [];                 // [[side, side], ...]

  const HOST_STATE_OF = {              // a host event -> the state it leaves the host in
    created: "created", started: "running", ready: "running", unpaused: "running", restarting: "restarting",
    exited: "exited", stopped: "exited", paused: "paused", removed: "absent",
  };
  const BIG = 60;                      // nodes past which the layout is tuned for speed
  const DENSE = 60;                    // checks past which their arrows are drawn faint
  const MOST_CUTS = 200;               // partition edges drawn; the host rows say the rest

  // -- the graph --------------------------------------------------------------------------

  const STYLE = [
    { selector: "node", style: {
      "label": "data(label)", "text-wrap": "wrap", "font-size": 10, "text-valign": "bottom", "text-margin-y": 3,
      "min-zoomed-font-size": 5, "text-max-width": 140, "color": "#1d2433", "border-width": 2, "border-color": "#55606f",
      "background-color": "#ffffff", "width": 30, "height": 30 } },
    { selector: "node.network", style: {
      "shape": "round-rectangle", "width": "data(width)", "height": "data(height)", "background-color": "#dfe8fb",
      "border-color": "#4a6fd1", "text-valign": "center", "text-margin-y": 0, "line-height": 1.25 } },
    { selector: "node.router", style: { "shape": "round-hexagon", "width": 42, "height": 38, "border-width": 3,
      "border-style": "double", "border-color": "#7a4b00" } },
    { selector: "node.host[state = 'running']", style: { "background-color": "#c9f2d0" } },
    { selector: "node.host[state = 'exited']", style: { "background-color": "#d6d6d6" } },
    { selector: "node.host[state = 'absent']", style: { "background-color": "#f4f4f4", "border-style": "dashed",
      "color": "#7a7f87" } },
    { selector: "node.host[state = 'paused']", style: { "background-color": "#cfe0ff" } },
    { selector: "node.host[state = 'restarting']", style: { "background-color": "#ffe3a3" } },
    { selector: "node.host[state = 'created']", style: { "background-color": "#fffbe6" } },
    { selector: "node.faulty", style: { "border-color": "#c62828", "border-width": 4, "color": "#8e1b1b" } },
    { selector: "edge", style: { "width": 2, "line-color": "#9aa3ae", "curve-style": "straight",
      "font-size": 8, "min-zoomed-font-size": 6, "text-wrap": "wrap", "color": "#39424e",
      "text-background-color": "#ffffff", "text-background-opacity": 0.8, "text-background-padding": 1 } },
    { selector: "edge.link", style: { "label": "data(label)" } },
    { selector: "edge.impaired", style: { "line-color": "#ef8a00", "line-style": "dashed", "width": 5,
      "color": "#9a5400" } },
    { selector: "edge.check", style: { "curve-style": "bezier", "target-arrow-shape": "triangle",
      "line-color": "#b3b9c2", "target-arrow-color": "#b3b9c2", "width": 2, "arrow-scale": 1.1,
      "control-point-step-size": 22 } },
    { selector: "edge.check:loop", style: { "loop-direction": "0deg", "loop-sweep": "-50deg",
      "control-point-step-size": 36 } },
    { selector: "edge.check.pass", style: { "line-color": "#2e9e4f", "target-arrow-color": "#2e9e4f" } },
    { selector: "edge.check.fail", style: { "line-color": "#d32f2f", "target-arrow-color": "#d32f2f", "width": 3,
      "label": "data(name)", "color": "#b71c1c", "font-size": 9 } },
    // Many checks: the arrows that passed or wait stay faint, so the failures stand out.
    { selector: "edge.check.dense", style: { "width": 1, "opacity": 0.3, "arrow-scale": 0.7 } },
    { selector: "edge.check.dense.fail", style: { "width": 2.5, "opacity": 1 } },
    { selector: "edge.check.running", style: { "line-style": "dashed", "line-color": "#f0a400",
      "target-arrow-color": "#f0a400" } },
    // A cut bows away from the arrows it lies along, labelled, so it reads as a cut.
    { selector: "edge.partition", style: { "line-color": "#c62828", "line-style": "dotted", "width": 4,
      "label": "✂ partitioned", "font-size": 10, "color": "#c62828", "curve-style": "unbundled-bezier",
      "control-point-distances": 70, "control-point-weights": 0.5, "text-background-opacity": 1 } },
    { selector: ":selected", style: { "overlay-color": "#3367d6", "overlay-opacity": 0.18, "overlay-padding": 4 } },
  ];

  function nodeOf(lab, name) {
    if (name === null || name === undefined) return null;
    if (lab.hosts.some((host) => host.name === name)) return `h:${name}`;
    if (lab.networks.some((network) => network.name === name)) return `n:${name}`;
    return null;
  }

  // What the graph's layout depends on: the networks, hosts, their links and the checks.
  function shapeOf(lab) {
    return JSON.stringify([lab.name, lab.networks.map((n) => n.name),
      lab.hosts.map((h) => [h.name, h.router, Object.keys(h.addresses)]),
      lab.checks.map((c) => [c.name, c.from, c.to])]);
  }

  function elementsOf(lab) {
    const made = [];
    for (const network of lab.networks) {
      const subnets = [network.subnet, network.subnet6].filter(Boolean);
      const lines = [network.name, ...subnets];
      made.push({ group: "nodes", classes: "network",
        data: { id: `n:${network.name}`, kind: "network", name: network.name, label: lines.join("\n"),
          width: Math.max(60, 6.5 * Math.max(...lines.map((line) => line.length)) + 16), height: 14 * lines.length + 12 } });
    }
    for (const host of lab.hosts) {
      made.push({ group: "nodes", classes: host.router ? "host router" : "host",
        data: { id: `h:${host.name}`, kind: "host", name: host.name, state: host.state, label: host.name } });
      for (const network of Object.keys(host.addresses)) {
        made.push({ group: "edges", classes: "link",
          data: { id: `a:${host.name}:${network}`, kind: "link", source: `h:${host.name}`, target: `n:${network}`,
            name: `${host.name}:${network}`, label: "" } });
      }
    }
    for (const check of lab.checks) {
      const target = nodeOf(lab, check.to);
      const source = check.from === null ? target : nodeOf(lab, check.from);
      if (!target || !source) continue;
      made.push({ group: "edges", classes: lab.checks.length > DENSE ? "check dense" : "check",
        data: { id: `c:${check.name}`, kind: "check", name: check.name, source, target } });
    }
    return made;
  }

  // fCoSE over the hosts, networks and their links only: the checks' arrows are drawn over
  // the result, never pull it about. A big lab gets shorter links and less repulsion, so
  // each network keeps its hosts close; it lays out 100 hosts in a few hundred milliseconds.
  function layout(count) {
    const big = count > BIG;
    return {
      name: "fcose", quality: "default", randomize: true, animate: false, fit: true, padding: 30,
      nodeDimensionsIncludeLabels: !big, uniformNodeDimensions: big, packComponents: true,
      nodeRepulsion: () => (big ? 4500 : 9000), idealEdgeLength: () => (big ? 50 : 120),
      edgeElasticity: () => 0.45, gravity: 0.25, numIter: 2500, tile: true,
    };
  }

  function buildGraph(lab) {
    const elements = elementsOf(lab);
    if (!cy) {
      if (typeof cytoscapeFcose !== "undefined") cytoscape.use(cytoscapeFcose);
      cy = cytoscape({ container: $("graph"), style: STYLE, elements: [],
        minZoom: 0.05, maxZoom: 4, boxSelectionEnabled: false, textureOnViewport: lab.hosts.length > BIG,
        hideEdgesOnViewport: lab.hosts.length > BIG, pixelRatio: lab.hosts.length > BIG ? 1 : "auto" });
      window.labctlGraph = cy;
      wireGraph();
    }
    cy.batch(() => {
      cy.elements().remove();
      cy.add(elements);
    });
    const placed = cy.elements("node, edge.link");
    const run = placed.layout(layout(lab.hosts.length + lab.networks.length));
    run.one("layoutstop", () => {
      cy.fit(undefined, 30);
      performance.mark("labctl:laid-out");
      document.body.dataset.ready = "true";
    });
    performance.mark("labctl:layout");
    run.run();
  }

  function wireGraph() {
    const tip = $("tooltip");
    cy.on("mouseover", "node, edge", (event) => {
      const text = describe(event.target);
      if (!text) return;
      tip.textContent = text;
      const where = event.renderedPosition || { x: 0, y: 0 };
      const box = $("graph").getBoundingClientRect();
      tip.style.left = `${box.left + window.scrollX + where.x + 14}px`;
      tip.style.top = `${box.top + window.scrollY + where.y + 14}px`;
      tip.hidden = false;
    });
    cy.on("mouseout", "node, edge", () => { tip.hidden = true; });
    cy.on("viewport", () => { tip.hidden = true; });
    cy.on("tap", "node, edge", (event) => select(event.target.data("kind"), event.target.data("name")));
    cy.on("tap", (event) => { if (event.target === cy) select(null, null); });
    cy.on("dbltap", "node.host", (event) => {
      if (L.canAct) window.open(L.pageUrl(`host/${encodeURIComponent(event.target.data("name"))}`), "_blank", "noopener");
    });
  }

  // -- what each thing says ---------------------------------------------------------------

  const hostOf = (name) => snapshot && snapshot.hosts.find((host) => host.name === name);
  const checkOf = (name) => snapshot && snapshot.checks.find((check) => check.name === name);
  const networkOf = (name) => snapshot && snapshot.networks.find((network) => network.name === name);

  function addressLines(addresses) {
    return Object.entries(addresses || {}).map(([network, a]) =>
      `${network}: ${[a.ipv4, a.ipv6].filter(Boolean).join(", ") || "no address"}`);
  }

  function impairmentOf(target) {
    const found = snapshot && snapshot.impairments.find((item) => item.target === target);
    return found ? Object.entries(found.values).map(([name, value]) => `${name} ${value}`).join(", ") : "";
  }

  function where(check) {
    const to = check.port !== null && check.port !== undefined ? `${check.to}:${check.port}` : `${check.to}`;
    return check.from ? `${check.from} → ${to}` : `watching ${to}`;
  }

  function resultText(name) {
    const state = checkState.get(name);
    if (state && state.running) return "running";
    const last = state && state.last;
    if (!last) return "not run yet";
    return last.passed ? "passed" : "failed";
  }

  function describe(element) {
    const kind = element.data("kind");
    const name = element.data("name");
    if (kind === "host") {
      const host = hostOf(name);
      if (!host) return name;
      const faults = host.faults.length ? `faults: ${host.faults.join("; ")}` : "";
      return [`${name}${host.router ? " (router)" : ""} — ${hostState.get(name) || host.state}`,
        ...addressLines(host.addresses), host.services.length ? `services: ${host.services.join(", ")}` : "",
        faults].filter(Boolean).join("\n");
    }
    if (kind === "network") {
      const network = networkOf(name);
      return network ? [name, network.subnet, network.subnet6].filter(Boolean).join("\n") : name;
    }
    if (kind === "link") {
      const impaired = impairmentOf(name);
      return [name, element.data("label"), impaired ? `impaired: ${impaired}` : ""].filter(Boolean).join("\n");
    }
    if (kind === "check") {
      const check = checkOf(name);
      if (!check) return name;
      const last = (checkState.get(name) || {}).last;
      return [name, `${where(check)} (${check.protocol})`, resultText(name),
        last && last.reason ? last.reason : "", last && last.time ? `at ${L.clock(last.time)}` : ""]
        .filter(Boolean).join("\n");
    }
    if (kind === "partition") return `partitioned: ${name}`;
    return "";
  }

  // -- updating in place ------------------------------------------------------------------

  function hostLabel(host) {
    const state = hostState.get(host.name) || host.state;
    const lines = [host.name];
    if (host.services.length) lines.push(host.services.join(" "));
    if (state !== "running") lines.push(`[${state}]`);
    for (const fault of host.faults) lines.push(fault);
    return lines.join("\n");
  }

  function paintHost(host) {
    if (!cy) return;
    const node = cy.getElementById(`h:${host.name}`);
    if (node.empty()) return;
    node.data({ state: hostState.get(host.name) || host.state, label: hostLabel(host) });
    node.toggleClass("faulty", host.faults.length > 0);
  }

  function paintLinks() {
    if (!cy) return;
    const impaired = new Map(snapshot.impairments.map((item) => [item.target, item]));
    for (const host of snapshot.hosts) {
      for (const [network, a] of Object.entries(host.addresses)) {
        const edge = cy.getElementById(`a:${host.name}:${network}`);
        if (edge.empty()) continue;
        const lines = [a.ipv4, a.ipv6].filter(Boolean);
        const values = impairmentOf(`${host.name}:${network}`);
        if (values) lines.push(values);
        edge.data("label", lines.join("\n"));
        edge.toggleClass("impaired", impaired.has(`${host.name}:${network}`));
      }
    }
  }

  function paintPartitions() {
    if (!cy) return;
    cy.batch(() => {
      cy.edges(".partition").remove();
      let drawn = 0;
      partitions.forEach((sides, index) => {
        const [one, other] = sides;
        const name = `${one.join(", ")} -- ${other.join(", ")}`;
        for (const a of one) {
          for (const b of other) {
            if (drawn >= MOST_CUTS) return;
            if (cy.getElementById(`h:${a}`).empty() || cy.getElementById(`h:${b}`).empty()) continue;
            cy.add({ group: "edges", classes: "partition",
              data: { id: `p:${index}:${a}:${b}`, kind: "partition", name, source: `h:${a}`, target: `h:${b}` } });
            drawn += 1;
          }
        }
      });
    });
    document.body.dataset.partitions = String(partitions.length);
  }

  function paintCheck(name) {
    const state = checkState.get(name) || {};
    const result = state.last ? (state.last.passed ? "pass" : "fail") : "";
    if (cy) {
      const edge = cy.getElementById(`c:${name}`);
      if (!edge.empty()) {
        edge.data("result", result);
        edge.toggleClass("pass", result === "pass");
        edge.toggleClass("fail", result === "fail");
        edge.toggleClass("running", Boolean(state.running));
      }
    }
    const row = checkRows.get(name);
    const check = checkOf(name);
    if (row && check) {
      const fresh = checkRow(check);
      row.replaceWith(fresh);
      checkRows.set(name, fresh);
    }
    if (selected && selected.kind === "check" && selected.name === name) showSelection();
  }

  function setResult(name, last) {
    const state = checkState.get(name);
    if (!state) return;        // a scenario's own check: not one of the lab's
    state.last = last;
    state.running = false;
    state.updates += 1;
    paintCheck(name);
  }

  function setRunning(name, running) {
    const state = checkState.get(name);
    if (!state) return;
    state.running = running;
    paintCheck(name);
  }

  // -- the tables -------------------------------------------------------------------------

  function actionButton(text, dataset) {
    return el("button", { type: "button", className: "act small", dataset }, text);
  }

  function terminalLink(name) {
    return el("a", { className: "act", href: L.pageUrl(`host/${encodeURIComponent(name)}`), target: "_blank",
      rel: "noopener", dataset: { terminal: name } }, "terminal");
  }

  function hostRow(host) {
    const state = hostState.get(host.name) || host.state;
    return el("tr", { dataset: { host: host.name, state, router: String(host.router), faults: host.faults.join("; ") } },
      el("td", { className: "name" }, host.name),
      el("td", {}, host.router ? "router" : "host"),
      el("td", { className: `state ${state}` }, state),
      el("td", { className: "addresses" }, ...addressLines(host.addresses).flatMap((line, i) => (i ? [el("br"), line] : [line]))),
      el("td", {}, host.services.join(", ")),
      el("td", { className: "faults" }, host.faults.join("; ")),
      el("td", { className: "row-actions" }, terminalLink(host.name),
        actionButton("stop", { hostAction: "stop", host: host.name }),
        actionButton("start", { hostAction: "start", host: host.name })));
  }

  function checkRow(check) {
    const state = checkState.get(check.name) || {};
    const last = state.last;
    const result = last ? (last.passed ? "pass" : "fail") : "";
    const elapsed = last && typeof last.elapsed_ms === "number" ? ` (${Math.round(last.elapsed_ms)} ms)` : "";
    return el("tr", { dataset: { check: check.name, result, running: String(Boolean(state.running)),
      updates: String(state.updates || 0) } },
      el("td", { className: "name" }, check.name),
      el("td", {}, check.from || ""),
      el("td", {}, check.port !== null && check.port !== undefined ? `${check.to}:${check.port}` : String(check.to || "")),
      el("td", { className: `result ${state.running ? "running" : result || "unknown"}` },
        state.running ? "running…" : (last ? (last.passed ? "passed" : "failed") + elapsed : "")),
      el("td", { className: "reason" }, last ? last.reason || "" : ""),
      el("td", {}, last ? L.clock(last.time) : ""),
      el("td", { className: "row-actions" }, actionButton("run", { run: check.name })));
  }

  function fillTables() {
    const hosts = $("hosts").tBodies[0];
    hosts.replaceChildren(...snapshot.hosts.map(hostRow));
    const checks = $("checks").tBodies[0];
    checkRows.clear();
    checks.replaceChildren(...snapshot.checks.map((check) => {
      const row = checkRow(check);
      checkRows.set(check.name, row);
      return row;
    }));
  }

  function fillSelect(select, options) {
    const kept = new Set(Array.from(select.selectedOptions, (option) => option.value));
    select.replaceChildren(...options.map(([value, text]) => el("option", { value, selected: kept.has(value) }, text)));
  }

  function targets() {
    const found = snapshot.networks.map((n) => [n.name, `network ${n.name}`]);
    for (const host of snapshot.hosts) found.push([host.name, `host ${host.name}`]);
    for (const host of snapshot.hosts) {
      for (const network of Object.keys(host.addresses)) found.push([`${host.name}:${network}`, `link ${host.name}:${network}`]);
    }
    return found;
  }

  function fillForms() {
    const hosts = snapshot.hosts.map((host) => [host.name, host.name]);
    fillSelect($("impair-target"), targets());
    fillSelect($("capture-target"), targets());
    fillSelect($("host-select"), hosts);
    fillSelect($("side-a"), hosts);
    fillSelect($("side-b"), hosts);
  }

  // -- the details of what is selected ----------------------------------------------------

  function select(kind, name) {
    selected = kind ? { kind, name } : null;
    if (kind === "host") {
      $("host-select").value = name;
      $("impair-target").value = name;
      $("capture-target").value = name;
    } else if (kind === "network" || kind === "link") {
      $("impair-target").value = name;
      $("capture-target").value = name;
    }
    showSelection();
  }

  function fact(term, value) {
    return [el("dt", {}, term), el("dd", {}, value)];
  }

  function showSelection() {
    const box = $("selection");
    if (!selected || !snapshot) {
      box.replaceChildren();
      return;
    }
    const { kind, name } = selected;
    const facts = [];
    const actions = [];
    if (kind === "host" && hostOf(name)) {
      const host = hostOf(name);
      facts.push(...fact("host", `${name}${host.router ? " (router)" : ""}`), ...fact("state", hostState.get(name) || host.state));
      for (const line of addressLines(host.addresses)) facts.push(...fact("address", line));
      if (host.services.length) facts.push(...fact("services", host.services.join(", ")));
      if (host.faults.length) facts.push(...fact("faults", host.faults.join("; ")));
      actions.push(terminalLink(name));
      for (const action of ["stop", "start", "restart", "pause", "unpause"]) {
        actions.push(actionButton(action, { hostAction: action, host: name }));
      }
    } else if (kind === "network" && networkOf(name)) {
      const network = networkOf(name);
      facts.push(...fact("network", name));
      for (const subnet of [network.subnet, network.subnet6].filter(Boolean)) facts.push(...fact("subnet", subnet));
      const on = snapshot.hosts.filter((host) => name in host.addresses).map((host) => host.name);
      facts.push(...fact("hosts", on.join(", ")));
    } else if (kind === "link") {
      facts.push(...fact("link", name));
      const impaired = impairmentOf(name);
      facts.push(...fact("impaired", impaired || "no"));
      if (impaired) actions.push(actionButton("clear", { clear: name }));
    } else if (kind === "check" && checkOf(name)) {
      const check = checkOf(name);
      const last = (checkState.get(name) || {}).last;
      facts.push(...fact("check", name), ...fact("exchange", `${where(check)} (${check.protocol})`),
        ...fact("result", resultText(name)));
      if (last && last.reason) facts.push(...fact("reason", last.reason));
      if (last && last.time) facts.push(...fact("when", L.clock(last.time)));
      actions.push(actionButton("run this check", { run: name }));
    } else if (kind === "partition") {
      facts.push(...fact("partition", name));
      actions.push(actionButton("heal", { heal: "all" }));
    } else {
      selected = null;
    }
    box.replaceChildren(el("dl", {}, ...facts), el("div", { className: "buttons" }, ...actions));
  }

  // -- reading the lab --------------------------------------------------------------------

  function take(lab) {
    snapshot = lab;
    document.title = `labctl: ${lab.name}`;
    $("lab-name").textContent = lab.name;
    for (const host of lab.hosts) hostState.set(host.name, host.state);
    for (const check of lab.checks) {
      const state = checkState.get(check.name) || { last: null, running: false, updates: 0 };
      // The newer of what the server remembers and what this page heard.
      if (check.last && (!state.last || (check.last.time || 0) >= (state.last.time || 0))) state.last = check.last;
      checkState.set(check.name, state);
    }
    partitions = lab.partitions;
    const now = shapeOf(lab);
    if (now !== shape) {
      shape = now;
      buildGraph(lab);
      fillForms();
    }
    cy.batch(() => {
      for (const host of lab.hosts) paintHost(host);
      paintLinks();
      for (const check of lab.checks) paintCheck(check.name);
    });
    paintPartitions();
    fillTables();
    showSelection();
  }

  let loading = null;
  let again = false;
  let soon = null;

  async function load() {
    if (loading) {
      again = true;
      return loading;
    }
    loading = (async () => {
      try {
        do {
          again = false;
          const lab = await L.get("api/lab");
          performance.mark("labctl:lab-read");
          take(lab);
          performance.mark("labctl:drawn");
        } while (again);
      } catch (error) {
        L.say(`cannot read the lab: ${error.message}`, true);
      } finally {
        loading = null;
      }
    })();
    return loading;
  }

  function loadSoon() {
    if (soon !== null) return;
    soon = setTimeout(() => { soon = null; load(); }, 120);
  }

  // -- events -----------------------------------------------------------------------------

  function onEvent(event) {
    if (snapshot && event.lab && event.lab !== snapshot.name) return;
    const detail = event.detail || {};
    if (event.kind === "check") {
      if (event.action === "running") setRunning(event.subject, true);
      else if (event.action === "passed" || event.action === "failed") {
        setResult(event.subject, { passed: event.action === "passed", reason: typeof detail.reason === "string" ? detail.reason : "",
          time: event.time, elapsed_ms: typeof detail.elapsed_ms === "number" ? detail.elapsed_ms : null });
      }
      return;
    }
    if (event.kind === "host") {
      const state = HOST_STATE_OF[event.action];
      const host = hostOf(event.subject);
      if (state && host) {
        hostState.set(event.subject, state);
        paintHost(host);
        const row = $("hosts").querySelector(`tr[data-host="${CSS.escape(event.subject)}"]`);
        if (row) row.replaceWith(hostRow(host));
      }
      loadSoon();      // its faults, as the engine now has them
      return;
    }
    if (event.kind === "fault") {
      if (event.action === "partitioned" && Array.isArray(detail.sides) && detail.sides.length === 2) {
        partitions = [...partitions, detail.sides];
        paintPartitions();
      } else if (event.action === "healed") {
        partitions = [];
        paintPartitions();
      }
      loadSoon();
      return;
    }
    if (event.kind === "capture") {
      loadCaptures();
      return;
    }
    if (event.kind === "scenario" || event.kind === "grade") return;
    loadSoon();        // the lab, a network or an impairment: read the lab again
  }

  // -- acting -----------------------------------------------------------------------------

  async function act(what, work) {
    L.say(`${what}…`);
    document.body.dataset.busy = "true";
    try {
      const said = await work();
      L.say(said || `${what}: done`);
    } catch (error) {
      L.say(`${what}: ${error.message}`, true);
    } finally {
      document.body.dataset.busy = "false";
    }
  }

  function runChecks(names) {
    const what = names.length === 1 ? `checking ${names[0]}` : "running every check";
    for (const name of names.length ? names : Array.from(checkState.keys())) setRunning(name, true);
    return act(what, async () => {
      try {
        const answer = await L.post("api/checks", names.length ? { names } : {});
        const now = Date.now() / 1000;
        for (const result of answer.results) {
          setResult(result.name, { passed: result.passed, reason: result.reason, time: now,
            elapsed_ms: result.elapsed_ms });
        }
        const failed = answer.results.filter((result) => !result.passed);
        return `${answer.results.length} checks: ${answer.results.length - failed.length} passed, ${failed.length} failed`
          + (failed.length ? ` (${failed[0].name}: ${failed[0].reason})` : "");
      } finally {
        for (const [name, state] of checkState) if (state.running) setRunning(name, false);
      }
    });
  }

  function impairValues() {
    const values = {};
    for (const name of ["delay", "jitter", "loss", "rate"]) {
      const value = $(`impair-${name}`).value.trim();
      if (value) values[name] = value;
    }
    return values;
  }

  async function loadCaptures() {
    if (!L.canAct) return;
    let answer;
    try {
      answer = await L.get("api/captures");
    } catch (error) {
      return;
    }
    $("captures").replaceChildren(...answer.captures.map((taken) => {
      const text = `#${taken.id} at ${taken.target}${taken.filter ? ` (${taken.filter})` : ""}: `
        + (taken.running ? "capturing" : `${taken.packets} packets, ${taken.bytes} bytes`);
      const item = el("li", { dataset: { capture: String(taken.id), running: String(Boolean(taken.running)) } }, text, " ");
      if (taken.running) item.append(actionButton("stop", { stopCapture: String(taken.id) }));
      else if (taken.download) {
        item.append(el("a", { href: L.url(taken.download), download: "", dataset: { download: String(taken.id) } },
          "download pcap"));
      }
      return item;
    }));
  }

  // A click anywhere that asked for something: the buttons carry what they do as data.
  function onClick(event) {
    const button = event.target.closest("button");
    if (!button || button.disabled) return;
    const data = button.dataset;
    if (data.run) runChecks([data.run]);
    else if (data.hostAction) {
      const host = data.host || $("host-select").value;
      if (!host) return;
      act(`${data.hostAction} ${host}`, async () => {
        const answer = await L.post(`api/hosts/${encodeURIComponent(host)}/${data.hostAction}`);
        return `${host}: ${answer.state}`;
      });
    } else if (data.clear) {
      act(`clearing ${data.clear}`, async () => {
        await L.post("api/impair/clear", { target: data.clear });
        return `${data.clear}: impairments cleared`;
      });
    } else if (data.heal) heal();
    else if (data.stopCapture) {
      act(`stopping capture ${data.stopCapture}`, async () => {
        const answer = await L.post(`api/captures/${encodeURIComponent(data.stopCapture)}/stop`);
        await loadCaptures();
        return `capture ${data.stopCapture}: ${answer.packets} packets, ${answer.bytes} bytes`;
      });
    }
  }

  function heal() {
    return act("healing", async () => {
      const answer = await L.post("api/heal");
      const healed = Array.isArray(answer.healed) ? answer.healed : [];
      return healed.length ? `healed: ${healed.join("; ")}` : "nothing to heal";
    });
  }

  function wireControls() {
    document.addEventListener("click", onClick);
    $("run-all").addEventListener("click", () => runChecks([]));
    $("heal").addEventListener("click", heal);
    $("heal-2").addEventListener("click", heal);
    $("clear-all").addEventListener("click", () => act("clearing every impairment", async () => {
      await L.post("api/impair/clear", {});
      return "every impairment cleared";
    }));
    $("impair-apply").addEventListener("click", () => {
      const target = $("impair-target").value;
      const values = impairValues();
      if (!Object.keys(values).length) {
        L.say("impair: give a delay, jitter, loss or rate", true);
        return;
      }
      act(`impairing ${target}`, async () => {
        const answer = await L.post("api/impair", { target, values });
        return `${answer.target}: ${Object.entries(answer.values).map(([k, v]) => `${k} ${v}`).join(", ")}`;
      });
    });
    $("impair-clear").addEventListener("click", () => {
      const target = $("impair-target").value;
      act(`clearing ${target}`, async () => {
        await L.post("api/impair/clear", { target });
        return `${target}: impairments cleared`;
      });
    });
    $("partition").addEventListener("click", () => {
      const sides = ["side-a", "side-b"].map((id) => Array.from($(id).selectedOptions, (option) => option.value));
      if (!sides[0].length || !sides[1].length) {
        L.say("partition: pick at least one host on each side", true);
        return;
      }
      act("partitioning", async () => {
        const answer = await L.post("api/partition", { sides });
        return `partitioned ${answer.sides[0].join(", ")} -- ${answer.sides[1].join(", ")}`;
      });
    });
    $("capture-start").addEventListener("click", () => {
      const target = $("capture-target").value;
      const filter = $("capture-filter").value.trim();
      act(`capturing at ${target}`, async () => {
        const answer = await L.post("api/captures", { target, filter });
        await loadCaptures();
        return `capture ${answer.id} started at ${target}`;
      });
    });
  }

  function start() {
    $("terminals-link").href = L.pageUrl("terminals");
    $("grade-link").href = L.pageUrl("grade", "");
    if (L.canAct) wireControls();
    L.events(onEvent, (state) => {
      L.setConnection(state);
      if (state === "live") loadSoon();   // what happened while it was not listening
    });
    load();
    loadCaptures();
  }

  start();
})();
