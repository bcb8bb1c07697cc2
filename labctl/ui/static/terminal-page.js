// The page of one host's terminal (host/NAME): the terminal fills the window.
"use strict";

(function () {
  const L = window.labctl;
  const host = window.labctlTerminal.hostOfPage();
  document.getElementById("host-name").textContent = L.lab ? `${host} (${L.lab})` : host;
  document.title = `labctl: ${host}`;
  document.getElementById("topology-link").href = L.pageUrl("");
  document.getElementById("terminals-link").href = L.pageUrl("terminals");
  if (!L.canAct) {
    L.say("this address may only watch: a terminal needs the address that acts", true);
    document.body.dataset.status = "error";
    return;
  }
  window.labctlTerminal.openTerminal(document.getElementById("term"), host, (status, text) => {
    document.body.dataset.status = status;
    L.say(text, status === "error");
  });
})();
