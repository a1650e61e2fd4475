// The triage console: sends the API key as a header, renders JSON with textContent only (never as HTML),
// and swaps in fragments that the server rendered with autoescaping.
"use strict";

const devMode = document.body.dataset.devMode === "true";
const statusLine = document.getElementById("status");

function key() { return sessionStorage.getItem("triage-key") || ""; }

function say(text, kind) {
  statusLine.textContent = text;
  statusLine.className = kind || "muted";
}

async function call(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (!devMode && key()) headers["X-API-Key"] = key();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const type = response.headers.get("content-type") || "";
  const data = type.includes("application/json") ? await response.json() : await response.text();
  if (!response.ok) {
    const message = data && data.message ? `${data.code}: ${data.message}` : `HTTP ${response.status}`;
    throw new Error(message);
  }
  return data;
}

async function refresh(id, path) {
  const box = document.getElementById(id);
  if (!box || box.contains(document.activeElement) && document.activeElement.tagName === "SELECT") return;
  try {
    box.innerHTML = await call("GET", path);  // server-rendered, autoescaped HTML
  } catch (err) {
    say(err.message, "warn");
  }
}

async function refreshDigest() {
  // shown only once the digest job has written one; the frame is sandboxed (no scripts, no same origin)
  const headers = devMode ? {} : { "X-API-Key": key() };
  const response = await fetch("/console/digest", { headers });
  const section = document.getElementById("digest-section");
  if (response.status === 200) {
    const html = await response.text();
    const frame = document.getElementById("digest");
    if (frame.srcdoc !== html) frame.srcdoc = html;
    section.hidden = false;
  } else {
    section.hidden = true;
  }
}

let ticks = 0;
function refreshAll() {
  if (!devMode && !key()) { say("Paste an API key (read and triage scopes) to see the queues."); return; }
  refresh("queue", "/console/queue");
  refresh("review", "/console/review");
  if (ticks % 20 === 0) refresh("shadow", "/console/shadow");
  if (ticks % 20 === 0) refresh("outbox", "/console/outbox");
  if (ticks++ % 20 === 0) refreshDigest().catch(() => {});
}

function line(label, value) {
  const p = document.createElement("p");
  const b = document.createElement("strong");
  b.textContent = label + " ";
  p.append(b, document.createTextNode(value));
  return p;
}

function showTicket(record) {
  const box = document.getElementById("ticket-result");
  box.replaceChildren();
  const r = record.result;
  box.append(line("ticket", `${record.id} (${record.status})`));
  if (r) {
    for (const f of ["category", "priority", "team"]) {
      box.append(line(f, `${r[f]} (${r.confidence[f].toFixed(2)}, ${r.backend[f]})`));
    }
    box.append(line("summary", r.summary));
    box.append(line("needs a human", r.needs_human ? "yes" : "no"));
  } else if (record.error) {
    box.append(line("error", record.error));
  }
  box.dataset.ticket = record.id;
}

document.getElementById("ticket-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const title = document.getElementById("ticket-title").value;
  const body = document.getElementById("ticket-body").value;
  say("triaging...");
  try {
    const record = await call("POST", "/v1/tickets", { title, body, channel: "console" });
    showTicket(record);
    say(`ticket ${record.id} ${record.status}`, "ok");
    event.target.reset();
    refreshAll();
  } catch (err) {
    say(err.message, "warn");
  }
});

document.getElementById("review").addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const card = button.closest("[data-ticket]");
  const payload = { ticket_id: card.dataset.ticket, action: button.dataset.action };
  if (payload.action === "correct") {
    payload.field = button.dataset.field;
    payload.value = card.querySelector(`select[data-field="${payload.field}"]`).value;
  }
  try {
    await call("POST", "/v1/feedback", payload);
    say(`feedback saved for ${payload.ticket_id}`, "ok");
    document.activeElement.blur();
    refreshAll();
  } catch (err) {
    say(err.message, "warn");
  }
});

const askForm = document.getElementById("ask-form");
if (askForm) {
  askForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const box = document.getElementById("ask-answer");
    box.replaceChildren();
    try {
      const answer = await call("POST", "/v1/ask", { question: document.getElementById("ask-question").value });
      box.append(line("answer", answer.answer || "(no answer)"));
      for (const c of answer.citations || []) box.append(line("source", `${c.title} [${c.doc_id}#${c.section}]`));
      if (answer.owner) box.append(line("owner", `${answer.owner.team_name || answer.owner.team} ${answer.owner.channel || ""}`));
    } catch (err) {
      say(err.message, "warn");
    }
  });
}

const keyInput = document.getElementById("api-key");
if (keyInput) {
  keyInput.value = key();
  document.getElementById("save-key").addEventListener("click", () => {
    sessionStorage.setItem("triage-key", keyInput.value.trim());
    say("key set for this tab", "ok");
    ticks = 0;
    refreshAll();
  });
}

refreshAll();
setInterval(refreshAll, 3000);
