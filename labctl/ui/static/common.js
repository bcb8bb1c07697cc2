// What every page of labctl ui shares: its token, the lab it shows, requests to the server,
// the event stream, and building elements. Lab and student text only ever reaches the page
// as textContent or as an attribute's value, never as markup.
"use strict";

(function () {
  const meta = (name) => {
    const found = document.querySelector(`meta[name="${name}"]`);
    return found ? found.getAttribute("content") || "" : "";
  };
  const token = meta("labctl-token");
  const canAct = meta("labctl-can-act") === "true";
  // A grade instance's page names its lab (?lab=NAME); the lab served needs none.
  const lab = new URLSearchParams(window.location.search).get("lab") || "";

  // A relative address on this server, with the token (and the lab shown) as parameters.
  function url(path, params) {
    const query = new URLSearchParams();
    query.set("token", token);
    if (lab) query.set("lab", lab);
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") query.set(name, String(value));
    }
    return `${path}?${query}`;
  }

  // A page's own address elsewhere on this server, for another lab (a grade instance) or this one.
  function pageUrl(path, otherLab) {
    const query = new URLSearchParams();
    query.set("token", token);
    const shown = otherLab === undefined ? lab : otherLab;
    if (shown) query.set("lab", shown);
    return `${path}?${query}`;
  }

  class RequestError extends Error {}

  // The server's answer as JSON; its one-line error (or what went wrong on the way) thrown.
  async function request(method, path, body) {
    const options = { method, headers: { "X-Labctl-Token": token }, cache: "no-store" };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url(path), options);
    } catch (error) {
      throw new RequestError(`the server did not answer (${error.message || error})`);
    }
    let answer = null;
    try {
      answer = await response.json();
    } catch (error) {
      answer = null;
    }
    if (!response.ok) {
      const said = answer && typeof answer.error === "string" ? answer.error : "";
      throw new RequestError(said || `${response.status} ${response.statusText || "refused"}`);
    }
    return answer;
  }

  const get = (path) => request("GET", path);
  const post = (path, body) => request("POST", path, body === undefined ? {} : body);

  // The lab's events, each handed to `onEvent`; `onState` hears "connecting", "live" (once
  // subscribed: the server sends `ready`, after every reconnection too) and "lost".
  function events(onEvent, onState) {
    const source = new EventSource(url("api/events"));
    onState("connecting");
    source.addEventListener("ready", () => onState("live"));
    source.addEventListener("message", (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      if (event && typeof event === "object" && typeof event.kind === "string") onEvent(event);
    });
    source.addEventListener("error", () => onState(source.readyState === EventSource.CLOSED ? "lost" : "connecting"));
    window.addEventListener("pagehide", () => source.close());
    return source;
  }

  // An element: el("td", {className: "x", dataset: {host: name}}, "text", child...). Strings
  // become text nodes.
  function el(tag, properties, ...children) {
    const made = document.createElement(tag);
    for (const [name, value] of Object.entries(properties || {})) {
      if (name === "dataset") Object.assign(made.dataset, value);
      else if (name === "attributes") for (const [key, v] of Object.entries(value)) made.setAttribute(key, v);
      else made[name] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      made.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return made;
  }

  // What the page says after an action: a line, marked as an error or not.
  function say(text, isError) {
    const where = document.getElementById("message");
    if (!where) return;
    where.textContent = text;
    where.dataset.kind = isError ? "error" : "info";
  }

  function clock(seconds) {
    if (typeof seconds !== "number" || !isFinite(seconds)) return "";
    return new Date(seconds * 1000).toLocaleTimeString();
  }

  function setConnection(state) {
    document.body.dataset.events = state;
    const where = document.getElementById("connection");
    if (where) {
      where.dataset.state = state;
      where.textContent = { connecting: "connecting…", live: "live", lost: "disconnected" }[state] || state;
    }
  }

  // What only the act address may do is marked `act` in the pages, and hidden from the other.
  document.body.classList.toggle("can-act", canAct);

  window.labctl = { token, canAct, lab, url, pageUrl, get, post, events, el, say, clock, setConnection, RequestError };
})();
