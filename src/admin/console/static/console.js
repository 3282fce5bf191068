// Knutpunkt console: the little that needs a script. Everything works without it but the
// live numbers on the routes page and the confirmation before a discard.
"use strict";

(function () {
  // A form with data-confirm asks first.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      e.preventDefault();
    }
  });

  var table = document.getElementById("routes");
  var status = document.getElementById("live-status");
  if (!table || !status) {
    return;
  }
  var EVERY_MS = 3000;

  function dash(v) {
    return v === null || v === undefined ? "\u2013" : String(v);
  }

  function setText(cell, text) {
    if (cell && cell.textContent !== text) {
      cell.textContent = text;
    }
  }

  function update(row, r) {
    setText(row.querySelector('[data-k="rate"]'), dash(r.rate));
    ["messages_in", "messages_out", "failed", "queue_depth"].forEach(function (k) {
      setText(row.querySelector('[data-k="' + k + '"]'), dash(r[k]));
    });
    var dl = row.querySelector('[data-k="dead_letters"]');
    if (dl) {
      var link = dl.querySelector("a");
      if (link && r.dead_letters > 0) {
        setText(link, String(r.dead_letters));
      } else if (r.dead_letters > 0 && table.getAttribute("data-operator") === "true") {
        dl.textContent = "";
        var a = document.createElement("a");
        a.href = "/console/routes/" + encodeURIComponent(r.id) + "/dead-letters";
        a.textContent = String(r.dead_letters);
        dl.appendChild(a);
      } else {
        setText(dl, dash(r.dead_letters));
      }
    }
    var circuits = row.querySelector('[data-k="circuits"]');
    if (circuits && r.circuits.length > 0) {
      var text = r.circuits.map(function (c) { return c.adapter + ": " + c.state; }).join(" ");
      if (circuits.textContent.replace(/\s+/g, " ").trim() !== text) {
        circuits.textContent = "";
        r.circuits.forEach(function (c) {
          var span = document.createElement("span");
          span.className = "circuit " + c.state;
          span.textContent = c.adapter + ": " + c.state;
          circuits.appendChild(span);
          circuits.appendChild(document.createTextNode(" "));
        });
      }
    }
  }

  function poll() {
    fetch("/console/live.json", { credentials: "same-origin", redirect: "manual", cache: "no-store" })
      .then(function (resp) {
        if (!resp.ok) {
          throw new Error(resp.status === 0 || resp.status === 401 ? "signed out: reload to sign in" : "HTTP " + resp.status);
        }
        return resp.json();
      })
      .then(function (body) {
        var rows = {};
        table.querySelectorAll("tbody tr[data-route]").forEach(function (tr) {
          rows[tr.getAttribute("data-route")] = tr;
        });
        body.routes.forEach(function (r) {
          if (rows[r.id]) {
            update(rows[r.id], r);
          }
        });
        status.textContent = "updated " + new Date().toLocaleTimeString();
        table.setAttribute("data-updated", body.at);
      })
      .catch(function (err) {
        status.textContent = "not updated (" + err.message + ")";
      })
      .then(function () {
        window.setTimeout(poll, EVERY_MS);
      });
  }
  window.setTimeout(poll, 200);
})();
