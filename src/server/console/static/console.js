// flaregate console: appends log rows as they are written, and reloads
// the approvals inbox when it changes (server-sent events). Rows are set
// with textContent only: never parsed as HTML.
"use strict";
(function () {
  // The approvals inbox loads again when the waiting requests change.
  const inbox = document.getElementById("inbox");
  if (inbox && window.EventSource) {
    const seen = new URLSearchParams({ pending: inbox.dataset.pending || "" });
    const changes = new EventSource("/console/approvals/stream?" + seen.toString());
    changes.addEventListener("changed", function () {
      changes.close();
      window.location.reload();
    });
  }

  const body = document.querySelector("#log tbody");
  if (!body || !window.EventSource) {
    return;
  }
  const table = document.getElementById("log");
  const query = new URLSearchParams(window.location.search);
  query.set("after", table.dataset.last || "0");
  const source = new EventSource("/console/log/stream?" + query.toString());
  source.addEventListener("row", function (event) {
    const row = JSON.parse(event.data);
    const line = document.createElement("tr");
    line.className = "decision " + String(row.decision);
    for (const key of ["id", "ts", "agent", "decision", "tool", "summary"]) {
      const cell = document.createElement("td");
      const value = String(row[key] === undefined ? "" : row[key]);
      if (key === "id") {
        const link = document.createElement("a");
        link.href = "/console/log/" + encodeURIComponent(value);
        link.textContent = value;
        cell.appendChild(link);
      } else if (key === "tool") {
        const code = document.createElement("code");
        code.textContent = value;
        cell.appendChild(code);
      } else {
        cell.textContent = value;
      }
      line.appendChild(cell);
    }
    body.appendChild(line);
    table.dataset.last = String(row.id);
  });
})();
