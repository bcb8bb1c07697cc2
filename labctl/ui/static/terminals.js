// A terminal on every host of the lab at once, each with the address of its own page.
"use strict";

(function () {
  const L = window.labctl;
  const el = L.el;
  document.getElementById("topology-link").href = L.pageUrl("");

  async function start() {
    if (!L.canAct) {
      L.say("this address may only watch: terminals need the address that acts", true);
      return;
    }
    let lab;
    try {
      lab = await L.get("api/lab");
    } catch (error) {
      L.say(`cannot read the lab: ${error.message}`, true);
      return;
    }
    document.getElementById("lab-name").textContent = lab.name;
    document.title = `labctl: ${lab.name}, every host`;
    const grid = document.getElementById("grid");
    for (const host of lab.hosts) {
      const status = el("span", { className: "status" }, host.state);
      const box = el("div", { className: "term" });
      grid.append(el("section", { className: "pane", dataset: { host: host.name } },
        el("h2", {}, el("a", { href: L.pageUrl(`host/${encodeURIComponent(host.name)}`), target: "_blank",
          rel: "noopener" }, host.name), status), box));
      window.labctlTerminal.openTerminal(box, host.name, (value, text) => {
        status.textContent = value === "open" ? "" : text;
      });
    }
    L.say(`${lab.hosts.length} terminals`);
  }

  start();
})();
