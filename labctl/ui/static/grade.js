// The class dashboard: a row per submission as `labctl grade` moves it along (queued, coming
// up, checking, graded), from the lab's grade events as they happen; its score and failed
// checks once graded, its report once written, its instance's pages while it runs.
"use strict";

(function () {
  const L = window.labctl;
  const el = L.el;
  const $ = (id) => document.getElementById(id);
  const rows = new Map();        // student -> the row as the server or the latest event has it
  const shown = new Map();       // student -> its <tr>
  let active = false;
  let labName = "";

  function score(row) {
    if (typeof row.score !== "number") return "";
    const points = typeof row.points === "number" ? ` / ${row.points}` : "";
    return `${row.score}${points}`;
  }

  function cells(row) {
    const failed = Array.isArray(row.failed) ? row.failed : [];
    const links = [];
    if (row.instance && row.state !== "graded") {
      links.push(el("a", { href: L.pageUrl("", row.instance), target: "_blank", rel: "noopener",
        dataset: { topology: row.instance } }, "topology"), " ",
      el("a", { className: "act", href: L.pageUrl("terminals", row.instance), target: "_blank", rel: "noopener",
        dataset: { terminals: row.instance } }, "terminals"));
    }
    const report = row.report ? el("a", { href: L.pageUrl(row.report, ""), target: "_blank", rel: "noopener",
      dataset: { report: row.student } }, "report") : "";
    const again = L.canAct && !active && row.state === "graded"
      ? el("button", { type: "button", className: "small", dataset: { regrade: row.student } }, "grade again") : "";
    return [
      el("td", {}, row.number ? String(row.number) : ""),
      el("td", { className: "name" }, row.student),
      el("td", { className: "state" }, row.state),
      el("td", { className: "score" }, score(row)),
      el("td", { className: "failed" }, failed.length ? el("ul", {}, ...failed.map((name) => el("li", {}, name))) : ""),
      el("td", { className: "error" }, row.error || ""),
      el("td", {}, report),
      el("td", {}, ...links),
      el("td", { className: "act" }, again),
    ];
  }

  function render() {
    const body = $("submissions").tBodies[0];
    const ordered = Array.from(rows.values()).sort((a, b) =>
      (a.number || 1e9) - (b.number || 1e9) || a.student.localeCompare(b.student));
    ordered.forEach((row, index) => {
      let line = shown.get(row.student);
      if (!line) {
        line = el("tr", { dataset: { student: row.student } });
        shown.set(row.student, line);
      }
      line.dataset.state = row.state;
      line.dataset.number = String(row.number || "");
      line.dataset.score = typeof row.score === "number" ? String(row.score) : "";
      line.dataset.failed = (row.failed || []).join("; ");
      line.replaceChildren(...cells(row));
      if (body.children[index] !== line) body.insertBefore(line, body.children[index] || null);
    });
    const graded = ordered.filter((row) => row.state === "graded").length;
    document.body.dataset.active = String(active);
    $("summary").textContent = ordered.length
      ? `${graded} of ${ordered.length} submissions graded${active ? ", grading…" : ""}`
      : (active ? "grading: waiting for the first submission…" : "no grading has run beside this server yet");
  }

  function take(answer) {
    active = Boolean(answer.active);
    labName = answer.lab || labName;
    $("lab-name").textContent = labName;
    document.title = `labctl: ${labName}, class dashboard`;
    for (const row of answer.rows) rows.set(row.student, row);
    render();
  }

  let loading = false;
  let again = false;
  async function load() {
    if (loading) {
      again = true;
      return;
    }
    loading = true;
    try {
      do {
        again = false;
        take(await L.get("api/grade"));
      } while (again);
    } catch (error) {
      L.say(`cannot read the class: ${error.message}`, true);
    } finally {
      loading = false;
    }
  }

  // Reports are written once the class is graded, just after its last event: asked for again
  // a few times, further apart each time, until every graded row has its report (a server
  // beside a `labctl grade` without --ui has none to give), then never again.
  const REPORT_WAITS = [250, 500, 1000, 2000, 4000, 8000];
  let reportTimer = null;
  function awaitReports(attempt) {
    clearTimeout(reportTimer);
    const missing = () => !active && Array.from(rows.values()).some((row) => row.state === "graded" && !row.report);
    if (attempt >= REPORT_WAITS.length || !missing()) return;
    reportTimer = setTimeout(async () => {
      await load();
      awaitReports(attempt + 1);
    }, REPORT_WAITS[attempt]);
  }

  function onEvent(event) {
    if (event.kind !== "grade") return;
    const detail = event.detail || {};
    if (event.action === "started") active = true;
    else if (event.action === "finished") active = false;
    else if (event.subject) {
      const row = rows.get(event.subject) || { student: event.subject, number: 0, state: "queued", score: null,
        points: null, failed: [], error: "", instance: null, report: null };
      row.state = event.action;
      if (typeof detail.number === "number") row.number = detail.number;
      row.instance = typeof detail.instance === "string" ? detail.instance : null;
      if (event.action === "queued") Object.assign(row, { score: null, points: null, failed: [], error: "", report: null });
      if (event.action === "graded") {
        row.score = typeof detail.score === "number" ? detail.score : null;
        row.points = typeof detail.points === "number" ? detail.points : null;
        row.failed = Array.isArray(detail.failed) ? detail.failed.filter((name) => typeof name === "string") : [];
        row.error = typeof detail.error === "string" ? detail.error : "";
      }
      rows.set(row.student, row);
    }
    render();
    load();        // what only the server knows: each report once written
    if (event.action === "finished") awaitReports(0);
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-regrade]");
    if (!button || !L.canAct) return;
    const student = button.dataset.regrade;
    button.disabled = true;
    L.say(`grading ${student} again…`);
    L.post(`api/grade/${encodeURIComponent(student)}/regrade`)
      .then(() => L.say(`grading ${student} again: the row follows`))
      .catch((error) => {
        L.say(`grading ${student} again: ${error.message}`, true);
        button.disabled = false;
      });
  });

  $("topology-link").href = L.pageUrl("", "");
  L.events(onEvent, (state) => {
    L.setConnection(state);
    if (state === "live") load();
  });
  load();
})();
