// A terminal on a lab host: xterm.js in the page, joined over a WebSocket to the same shell
// `labctl shell` opens. Binary frames carry the terminal's bytes both ways (so Ctrl-C is the
// byte 0x03, which interrupts the program on the host); a text frame {"resize": [rows, cols]}
// follows every change of the terminal's size, as the fit addon sets it from its box.
"use strict";

(function () {
  const L = window.labctl;
  const encoder = new TextEncoder();
  const opened = {};                    // host -> {term, socket}: what tests and the console reach
  window.labctlTerminals = opened;

  const THEME = { background: "#000000", foreground: "#e6e6e6", cursor: "#f0f0f0" };

  function socketUrl(host, rows, cols) {
    const address = new URL(L.url(`ws/terminal/${encodeURIComponent(host)}`, { rows, cols }), document.baseURI);
    address.protocol = address.protocol === "https:" ? "wss:" : "ws:";
    return address.href;
  }

  // A terminal on `host` in `box`; `onStatus(status, text)` hears "connecting", "open",
  // "closed" and "error", with a line to show.
  function openTerminal(box, host, onStatus) {
    const term = new Terminal({ cursorBlink: true, convertEol: false, scrollback: 5000, theme: THEME,
      fontFamily: "ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace", fontSize: 14 });
    const fit = new FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(box);
    try {
      fit.fit();
    } catch (error) {
      // a box not laid out yet: the terminal keeps its default size until it is
    }
    const state = { term, socket: null, status: "connecting" };
    opened[host] = state;
    const status = (value, text) => {
      state.status = value;
      box.dataset.status = value;
      onStatus(value, text);
    };
    status("connecting", `connecting to ${host}…`);

    const socket = new WebSocket(socketUrl(host, term.rows, term.cols));
    socket.binaryType = "arraybuffer";
    state.socket = socket;
    const send = (data) => { if (socket.readyState === WebSocket.OPEN) socket.send(data); };

    socket.addEventListener("open", () => {
      status("open", `a shell on ${host}`);
      send(JSON.stringify({ resize: [term.rows, term.cols] }));
      term.focus();
    });
    socket.addEventListener("message", (message) => {
      if (message.data instanceof ArrayBuffer) {
        term.write(new Uint8Array(message.data));
        return;
      }
      let said = null;
      try {
        said = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      if (said && typeof said.error === "string") status("error", `${host}: ${said.error}`);
      else if (said && "exit" in said) status("closed", `the shell on ${host} ended (exit code ${said.exit})`);
    });
    socket.addEventListener("close", (closed) => {
      if (state.status === "error" || state.status === "closed") return;
      status(closed.code >= 4000 ? "error" : "closed",
        closed.code >= 4000 ? `${host}: refused (${closed.code - 4000})` : `the connection to ${host} closed`);
    });
    socket.addEventListener("error", () => {
      if (state.status === "connecting") status("error", `cannot open a terminal on ${host}`);
    });

    term.onData((data) => send(encoder.encode(data)));
    term.onBinary((data) => send(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff)));
    term.onResize(({ rows, cols }) => send(JSON.stringify({ resize: [rows, cols] })));

    // The box changes size (the window, the grid): the terminal follows, and the host hears.
    let pending = false;
    new ResizeObserver(() => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        try {
          fit.fit();
        } catch (error) {
          // hidden for now
        }
      });
    }).observe(box);
    window.addEventListener("pagehide", () => socket.close());
    return state;
  }

  // The host a /host/NAME page is about.
  function hostOfPage() {
    const parts = window.location.pathname.split("/");
    return decodeURIComponent(parts[parts.length - 1] || "");
  }

  window.labctlTerminal = { openTerminal, hostOfPage };
})();
