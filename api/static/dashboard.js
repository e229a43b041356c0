// Meowstik dashboard: live session pages over SSE, and actions through the REST API only.
// Everything that comes from agents or users is written with textContent, never as HTML.
"use strict";

const API = "/api/orchestrator";
const TERMINAL = new Set(["completed", "failed", "cancelled"]);

// Logged in with a token, the page carries the login's CSRF token: every change echoes it.
const CSRF = document.querySelector('meta[name="csrf-token"]');

async function api(method, path, body) {
  const headers = body === undefined ? {} : { "Content-Type": "application/json" };
  if (CSRF) headers["X-CSRF-Token"] = CSRF.content;
  const response = await fetch(path.startsWith("/api/") ? path : API + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (data.error && data.error.message) || `HTTP ${response.status}`;
    throw new Error(message);
  }
  return data;
}

function say(element, text, ok) {
  if (!element) return;
  element.textContent = text;
  element.classList.remove("ok", "problem");
  element.classList.add(ok ? "ok" : "problem");
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null ? "" : String(text);
  row.appendChild(td);
  return td;
}

function pretty(value) {
  return value === undefined ? "" : JSON.stringify(value, null, 2);
}

// --- session page -----------------------------------------------------------------------------
function sessionPage() {
  const sid = document.body.dataset.session;
  const known = new Set(JSON.parse(document.body.dataset.steps || "[]"));
  let timer = null;
  let closed = false;
  // the State panel (state-panel.js): redrawn on every state.updated event and step refresh
  const state = statePanel(document.getElementById("state"),
    () => api("GET", `/sessions/${encodeURIComponent(sid)}/state`));
  // running steps' text, from step.delta events
  const live = liveText();
  // each step's transcript under its row, and its tokens (transcript.js)
  const transcripts = transcriptPanels((step) => api("GET",
    `/sessions/${encodeURIComponent(sid)}/steps/${encodeURIComponent(step)}/transcript`));
  // what the session and each step spent: drawn from the page's own figures, then each refresh
  const spent = costPanel();
  spent.session(JSON.parse(document.getElementById("cost").dataset.cost || "null"));
  // the session's budget next to it: its limits, what counts against them, a pause
  const budgetLine = document.getElementById("budget");
  drawBudget(budgetLine, JSON.parse(budgetLine.dataset.budget || "null"),
    budgetLine.dataset.stopped || "");
  for (const td of document.querySelectorAll('#steps td[data-field="cost"]')) {
    spent.step(td, JSON.parse(td.dataset.cost || "null"));
  }

  function schedule() {
    if (timer === null) timer = setTimeout(() => { timer = null; refresh(); }, 100);
  }

  async function refresh() {
    let snapshot;
    try {
      snapshot = await api("GET", `/sessions/${encodeURIComponent(sid)}`);
    } catch (error) {
      return;
    }
    const ids = Object.keys(snapshot.steps);
    if (ids.some((id) => !known.has(id))) {
      location.reload(); // a step returned a sub-plan: draw the new graph
      return;
    }
    const status = document.getElementById("status");
    status.textContent = snapshot.status;
    status.className = `badge status-${snapshot.status}`;
    const done = snapshot.completedTasks + snapshot.failedTasks;
    document.getElementById("progress-bar").style.width =
      `${snapshot.totalTasks ? Math.round((100 * done) / snapshot.totalTasks) : 0}%`;
    document.getElementById("progress").textContent =
      `${snapshot.completedTasks}/${snapshot.totalTasks} completed` +
      (snapshot.failedTasks ? `, ${snapshot.failedTasks} failed` : "");
    document.getElementById("cancel").disabled = TERMINAL.has(snapshot.status);
    spent.session(snapshot.cost);
    drawBudget(budgetLine, snapshot.budget || null, budgetStop(snapshot));
    let waiting = false;
    for (const [id, step] of Object.entries(snapshot.steps)) {
      const node = document.querySelector(`g.node[data-step="${CSS.escape(id)}"]`);
      if (node) {
        node.setAttribute("class", `node state-${step.status}`);
        node.querySelector('[data-field="node-status"]').textContent =
          step.status + (step.agentId ? ` · ${step.agentId}` : "");
      }
      const row = document.querySelector(`#steps tr[data-step="${CSS.escape(id)}"]`);
      if (row) {
        const badge = document.createElement("span");
        badge.className = `badge status-${step.status}`;
        badge.textContent = step.status;
        const reason = document.createElement("small");
        reason.className = `waiting waiting-${step.waitingFor || "none"}`;
        reason.dataset.field = "waiting";
        reason.textContent = waitingText(step);
        row.querySelector('[data-field="status"]').replaceChildren(badge, reason);
        row.querySelector('[data-field="agent"]').textContent = step.agentId || "";
        transcripts.usage(row.querySelector('[data-field="tokens"]'), step.usage);
        spent.step(row.querySelector('[data-field="cost"]'), step.cost);
        row.querySelector('[data-field="attempts"]').textContent = step.attempts;
        row.querySelector('[data-field="queued"]').textContent = step.queuedAt || "";
        row.querySelector('[data-field="started"]').textContent = step.startedAt || "";
        row.querySelector('[data-field="finished"]').textContent = step.finishedAt || "";
        const result = snapshot.results[step.jobId];
        row.querySelector('[data-field="output"]').textContent =
          result !== undefined ? pretty(result) : step.error || "";
      }
      transcripts.update(id, step);
      if (FINISHED_STEP.has(step.status)) live.drop(id); // its output cell has the result now
      if (step.status === "waiting_for_input") waiting = true;
    }
    renderInputs(snapshot);
    loadLogs();
    state.load(); // a completed step's state updates are not state.updated events
    if (TERMINAL.has(snapshot.status) && !waiting) closeStream();
  }

  // why a queued step has no agent yet: every eligible one is full, or none is alive (then it
  // fails at its schedule deadline unless one appears)
  function waitingText(step) {
    if (step.status !== "queued" || !step.waitingFor) return "";
    if (step.waitingFor !== "agent") return ` waiting for ${step.waitingFor}`;
    return " waiting for an agent" +
      (step.scheduleDeadline ? `; fails at ${step.scheduleDeadline}` : "");
  }

  // One form per step waiting for input; the steps parked on the session's budget share one
  // budget form (answering any of them answers them all). Forms are drawn again only when the
  // questions change, so that an answer being typed stays.
  function renderInputs(snapshot) {
    const box = document.getElementById("inputs");
    const open = Object.entries(snapshot.steps).filter(
      ([, step]) => step.status === "waiting_for_input" && step.inputRequest);
    const parked = open.filter(([, step]) => step.inputRequest.reason === "budget");
    const asked = open.filter(([, step]) => step.inputRequest.reason !== "budget");
    const wanted = asked.map(([id]) => id);
    if (parked.length) wanted.unshift(`budget:${budgetKey(parked[0][1].inputRequest)}`);
    const shown = [...box.querySelectorAll("form.input-form, form.budget-form")].map((f) =>
      (f.classList.contains("budget-form") ? `budget:${f.dataset.requested}` : f.dataset.step));
    if (shown.join("|") === wanted.join("|")) {
      const current = box.querySelector("form.budget-form");
      if (current) { // the same question: more steps may have parked on it since
        current.dataset.step = parked[0][0];
        current.querySelector(".parked").textContent = parked.map(([id]) => id).join(", ");
      }
      return;
    }
    box.replaceChildren();
    if (!open.length) {
      const p = document.createElement("p");
      p.className = "none";
      p.textContent = "No step is waiting for input.";
      box.appendChild(p);
    }
    if (parked.length) {
      box.appendChild(budgetForm(parked.map(([id]) => id), parked[0][1].inputRequest,
        snapshot.budget || null));
    }
    for (const [id, step] of asked) box.appendChild(inputForm(id, step.inputRequest));
  }

  // the budget question of every parked step: the same request, told apart by when it was asked
  function budgetKey(request) {
    return String(request.requestedAt || request.question || "");
  }

  function budgetForm(ids, request, budget) {
    const form = document.createElement("form");
    form.className = "budget-form";
    form.noValidate = true; // the API's message says what is wrong with an amount
    form.dataset.step = ids[0];
    form.dataset.requested = budgetKey(request);
    const p = document.createElement("p");
    const strong = document.createElement("strong");
    strong.textContent = "Budget reached";
    const question = document.createElement("span");
    question.className = "question";
    question.textContent = request.question;
    p.append(strong, ": ", question);
    const meta = document.createElement("p");
    meta.className = "budget-meta";
    const small = document.createElement("small");
    const steps = document.createElement("span");
    steps.className = "parked";
    steps.textContent = ids.join(", ");
    small.append("Paused steps: ", steps);
    if (request.deadline) {
      const deadline = document.createElement("span");
      deadline.className = "deadline";
      deadline.textContent = request.deadline;
      small.append(" · decide by ", deadline, ", or the session stops");
    }
    meta.appendChild(small);
    const label = document.createElement("label");
    label.textContent = "Raise the budget to $ ";
    const amount = document.createElement("input");
    amount.type = "number";
    amount.name = "raiseTo";
    amount.step = "any";
    amount.min = "0";
    amount.value = raiseSuggestion(budget || request);
    label.appendChild(amount);
    const raise = document.createElement("button");
    raise.type = "submit";
    raise.className = "raise";
    raise.textContent = "Raise budget";
    const stop = document.createElement("button");
    stop.type = "button";
    stop.className = "stop";
    stop.textContent = "Stop session";
    const result = document.createElement("span");
    result.className = "form-result";
    result.setAttribute("role", "status");
    form.append(p, meta, label, " ", raise, " ", stop, " ", result);
    bindBudgetForm(form);
    return form;
  }

  // an answer to the step the form is for; the API's error message shown in the form
  async function answer(form, value, done) {
    const result = form.querySelector(".form-result");
    const buttons = form.querySelectorAll("button");
    buttons.forEach((button) => { button.disabled = true; });
    try {
      await api("POST", `/sessions/${encodeURIComponent(sid)}/input`, {
        stepId: form.dataset.step, value,
      });
      say(result, done, true);
      schedule();
    } catch (error) {
      say(result, error.message, false);
    } finally {
      buttons.forEach((button) => { button.disabled = false; });
    }
  }

  function bindBudgetForm(form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = form.querySelector('input[name="raiseTo"]').value.trim();
      const dollars = Number(text);
      if (!text || !Number.isFinite(dollars)) {
        say(form.querySelector(".form-result"), "Enter the new budget in dollars.", false);
        return;
      }
      answer(form, { raiseTo: dollars }, `Budget raised to $${text}; the paused steps go on.`);
    });
    form.querySelector("button.stop").addEventListener("click", () => {
      answer(form, { stop: true }, "Stopped; the session fails with BudgetExceeded.");
    });
  }

  function inputForm(id, request) {
    const form = document.createElement("form");
    form.className = "input-form";
    form.dataset.step = id;
    const p = document.createElement("p");
    const strong = document.createElement("strong");
    strong.textContent = id;
    const question = document.createElement("span");
    question.className = "question";
    question.textContent = request.question;
    p.append(strong, ": ", question);
    form.appendChild(p);
    if (request.schema) {
      const pre = document.createElement("pre");
      pre.className = "schema";
      pre.textContent = pretty(request.schema);
      form.appendChild(pre);
    }
    const label = document.createElement("label");
    label.textContent = "Answer (JSON) ";
    const area = document.createElement("textarea");
    area.name = "value";
    area.rows = 3;
    area.value = "{}";
    label.appendChild(area);
    const button = document.createElement("button");
    button.type = "submit";
    button.textContent = "Send answer";
    const result = document.createElement("span");
    result.className = "form-result";
    result.setAttribute("role", "status");
    form.append(label, button, " ", result);
    bindInputForm(form);
    return form;
  }

  function bindInputForm(form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      let value;
      try {
        value = JSON.parse(form.querySelector("textarea").value);
      } catch (error) {
        say(form.querySelector(".form-result"), `Not valid JSON: ${error.message}`, false);
        return;
      }
      answer(form, value, "Answer sent; the step runs again.");
    });
  }

  async function loadLogs() {
    const filters = new FormData(document.getElementById("log-filters"));
    const query = new URLSearchParams({ limit: "200" });
    for (const [key, value] of filters) if (value) query.set(key, value);
    let page;
    try {
      page = await api("GET", `/sessions/${encodeURIComponent(sid)}/logs?${query}`);
    } catch (error) {
      return;
    }
    const body = document.querySelector("#logs tbody");
    body.replaceChildren();
    for (const entry of page.logs) {
      const row = document.createElement("tr");
      row.className = `level-${entry.level}`;
      cell(row, entry.timestamp);
      cell(row, entry.level);
      cell(row, entry.source);
      cell(row, entry.taskId);
      cell(row, entry.agentId);
      cell(row, entry.message + (entry.error ? ` — ${entry.error}` : ""));
      body.appendChild(row);
    }
  }

  let stream = null;
  function closeStream() {
    closed = true;
    if (stream) stream.close();
  }
  if (window.EventSource && !TERMINAL.has(document.getElementById("status").textContent)) {
    stream = new EventSource(`${API}/sessions/${encodeURIComponent(sid)}/events`);
    stream.onmessage = schedule;
    for (const kind of ["session.finished", "session.cancelled", "step.started", "step.completed",
      "step.failed", "step.waiting_for_input", "step.input_received", "step.decomposed",
      "step.retrying", "step.fallback", "step.waiting_for_capacity", "step.recovered",
      "step.waiting_for_agent", "step.schedule_timeout"]) {
      stream.addEventListener(kind, schedule);
    }
    stream.addEventListener("state.updated", () => state.schedule());
    stream.addEventListener("step.delta", (event) => live.add(JSON.parse(event.data)));
    // a step that starts (again) streams a new text: its seq counts from 1 again
    stream.addEventListener("step.started", (event) => live.drop(JSON.parse(event.data).taskId));
  }
  // a slow poll as well, in case a proxy drops the event stream
  setInterval(() => { if (!closed) schedule(); }, 3000);

  document.getElementById("cancel").addEventListener("click", async () => {
    const result = document.getElementById("action-result");
    try {
      await api("POST", `/sessions/${encodeURIComponent(sid)}/cancel`);
      say(result, "Cancelled.", true);
    } catch (error) {
      say(result, error.message, false);
    }
    schedule();
  });
  document.querySelectorAll("form.input-form").forEach(bindInputForm);
  document.querySelectorAll("form.budget-form").forEach(bindBudgetForm);
  document.getElementById("log-filters").addEventListener("change", loadLogs);
  document.getElementById("log-filters").addEventListener("submit", (e) => e.preventDefault());
  loadLogs();
}

// --- a running step's text as it arrives (step.delta events) ----------------------------------
// A row under the step's row of the steps table holds the text so far: each chunk is appended
// (a seq already seen is ignored) and the whole is set with textContent. Once done, or once the
// step has completed, it stays until a snapshot refresh shows the step finished, with its result.
const FINISHED_STEP = new Set(["completed", "failed", "cancelled", "skipped"]);

function liveText() {
  const boxes = new Map(); // step id -> {row, pre, text, seq, done}
  // steps already over when the page was drawn: the event history replays their text; skip it
  const over = new Set();
  for (const row of document.querySelectorAll("#steps tbody tr[data-step]")) {
    const badge = row.querySelector('[data-field="status"] .badge');
    if (badge && FINISHED_STEP.has(badge.textContent)) over.add(row.dataset.step);
  }

  function drop(id) {
    const box = boxes.get(id);
    if (box) box.row.remove();
    boxes.delete(id);
  }

  function open(id) {
    const stepRow = document.querySelector(`#steps tr[data-step="${CSS.escape(id)}"]`);
    if (!stepRow) return null;
    const row = document.createElement("tr");
    row.className = "live-row";
    row.dataset.liveStep = id;
    const td = document.createElement("td");
    td.colSpan = document.querySelectorAll("#steps thead th").length || 1;
    const label = document.createElement("small");
    label.className = "live-label";
    label.textContent = "model text, as it arrives";
    const pre = document.createElement("pre");
    pre.className = "live-text";
    pre.dataset.field = "live";
    td.append(label, pre);
    row.appendChild(td);
    stepRow.after(row);
    const box = { row, pre, text: "", seq: 0, done: false };
    boxes.set(id, box);
    return box;
  }

  function add(delta) {
    const id = delta.stepId;
    if (typeof id !== "string" || over.has(id)) return;
    let box = boxes.get(id);
    if (box && box.done && delta.seq === 1) { // the step runs again
      drop(id);
      box = undefined;
    }
    box = box || open(id);
    if (!box || !(delta.seq > box.seq)) return;
    box.seq = delta.seq;
    box.text += String(delta.text || "");
    box.pre.textContent = box.text;
    box.pre.dataset.seq = String(delta.seq);
    if (delta.done) {
      box.done = true;
      box.row.classList.add("done");
    }
  }

  return { add, drop };
}

// --- what a session spent (its snapshot's `cost`, each step's `cost`) --------------------------
// The same wording as `meowstik status` and `meowstik costs` (cli/rendering.py): usd is an exact
// decimal string, shown as it is; null (absent on the snapshot) when no call had a price.
function plural(count, word) {
  return `${(count || 0).toLocaleString("en-US")} ${word}${count === 1 ? "" : "s"}`;
}

function known(usd) {
  return typeof usd === "string";
}

// "$0.0000711", "$0.0000711 + 2 calls without a price", or "cost unknown"
function money(figures) {
  if (known(figures.usd)) {
    return `$${figures.usd}` + (figures.uncostedCalls
      ? ` + ${plural(figures.uncostedCalls, "call")} without a price` : "");
  }
  return figures.modelCalls ? "cost unknown" : "$0";
}

function seconds(value) {
  return `${(value || 0).toFixed(2)} s`;
}

// "$0.0000711 · 6 model calls · 558 tokens · CPU 0.42 s"; unknown, it names the unpriced models
function costLine(cost) {
  let first = money(cost);
  if (!known(cost.usd) && cost.modelCalls) {
    const unpriced = Object.entries(cost.byModel || {})
      .filter(([, figures]) => !known(figures.usd)).map(([model]) => model);
    first += unpriced.length ? ` (no price for ${unpriced.join(", ")})` : " (no price)";
  }
  const calls = plural(cost.modelCalls, "model call") +
    (cost.uncountedCalls ? ` (${cost.uncountedCalls} without token counts)` : "");
  return [first, calls, plural(cost.totalTokens, "token"), `CPU ${seconds(cost.cpuSeconds)}`]
    .join(" · ");
}

function costPanel() {
  const line = document.getElementById("cost");
  const breakdown = document.getElementById("cost-breakdown");

  function session(cost) {
    if (!line) return;
    if (!cost) {
      line.textContent = "";
      line.hidden = true;
      if (breakdown) breakdown.hidden = true;
      return;
    }
    line.textContent = costLine(cost);
    line.classList.toggle("unknown", !known(cost.usd) && Boolean(cost.modelCalls));
    line.hidden = false;
    if (!breakdown) return;
    breakdown.hidden = false;
    rows("agent", cost.byAgent, (row, figures) => {
      cell(row, (figures.cpuSeconds || 0).toFixed(2));
      cell(row, figures.runs);
    });
    rows("model", cost.byModel, () => {});
  }

  // one row per agent or model: name, cost, calls, prompt and completion tokens (then `more`)
  function rows(by, entries, more) {
    const body = breakdown.querySelector(`table[data-by="${by}"] tbody`);
    const drawn = [];
    for (const [name, figures] of Object.entries(entries || {})) {
      const row = document.createElement("tr");
      row.dataset[by] = name;
      cell(row, name).dataset.field = "name";
      const usd = cell(row, money(figures));
      usd.dataset.field = "usd";
      if (!known(figures.usd) && figures.modelCalls) usd.classList.add("unknown");
      cell(row, (figures.modelCalls || 0).toLocaleString("en-US"));
      cell(row, (figures.promptTokens || 0).toLocaleString("en-US"));
      cell(row, (figures.completionTokens || 0).toLocaleString("en-US"));
      more(row, figures);
      drawn.push(row);
    }
    body.replaceChildren(...drawn);
  }

  // a step's Cost cell: its money; the calls, tokens, CPU and wall time in the tooltip
  function step(td, cost) {
    if (!td) return;
    if (!cost) {
      td.replaceChildren();
      td.removeAttribute("title");
      return;
    }
    const usd = document.createElement("span");
    usd.className = "usd";
    usd.dataset.field = "usd";
    usd.textContent = known(cost.usd) ? `$${cost.usd}` : (cost.modelCalls ? "unknown" : "$0");
    td.classList.toggle("unknown", !known(cost.usd) && Boolean(cost.modelCalls));
    const parts = [usd];
    if (known(cost.usd) && cost.uncostedCalls) {
      const missing = document.createElement("small");
      missing.className = "uncosted";
      missing.dataset.field = "uncosted";
      missing.textContent = `+ ${plural(cost.uncostedCalls, "call")} without a price`;
      parts.push(document.createElement("br"), missing);
    }
    td.replaceChildren(...parts);
    const lines = [
      `${plural(cost.modelCalls, "model call")} · ${plural(cost.totalTokens, "token")} ` +
        `(${cost.promptTokens || 0} prompt + ${cost.completionTokens || 0} completion)`,
      `CPU ${seconds(cost.cpuSeconds)} · wall ${seconds(cost.wallSeconds)} · ` +
        plural(cost.runs, "run"),
    ];
    if (cost.uncountedCalls) {
      lines.push(`${plural(cost.uncountedCalls, "call")} without token counts`);
    }
    if (!known(cost.usd) && cost.modelCalls) lines.push("no price for its model");
    td.setAttribute("title", lines.join("\n"));
  }

  return { session, step };
}

// --- a session's budget (its snapshot's `budget`) ---------------------------------------------
// "Budget $0.00003 · spent $0.0000237 · paused: waiting for a decision"; a token limit as
// "Budget 2,000 tokens · spent 86 tokens" (or "86 of 2,000 tokens" after a dollar limit).
function budgetText(budget, stopped) {
  const parts = [];
  const tokens = (count) => (count || 0).toLocaleString("en-US");
  if (budget.maxCostUsd !== null && budget.maxCostUsd !== undefined) {
    parts.push(`Budget $${budget.maxCostUsd}`, `spent $${budget.spentUsd || "0"}`);
  }
  if (budget.maxTokens !== null && budget.maxTokens !== undefined) {
    if (parts.length) {
      parts.push(`${tokens(budget.spentTokens)} of ${tokens(budget.maxTokens)} tokens`);
    } else {
      parts.push(`Budget ${plural(budget.maxTokens, "token")}`,
        `spent ${plural(budget.spentTokens || 0, "token")}`);
    }
  }
  if (budget.paused) parts.push("paused: waiting for a decision");
  else if (stopped) parts.push("stopped: BudgetExceeded");
  return parts.join(" · ");
}

// the session's BudgetExceeded error message, once a stop (or the deadline) ended it
function budgetStop(snapshot) {
  const found = (snapshot.errors || []).find((error) => error.errorType === "BudgetExceeded");
  return found ? String(found.message || "BudgetExceeded") : "";
}

function drawBudget(line, budget, stopped) {
  if (!line) return;
  if (!budget) {
    line.textContent = "";
    line.hidden = true;
    return;
  }
  line.textContent = budgetText(budget, stopped);
  line.title = stopped || "";
  line.classList.toggle("paused", Boolean(budget.paused));
  line.classList.toggle("stopped", Boolean(stopped) && !budget.paused);
  line.hidden = false;
}

// what the budget form offers: twice the cost limit, or twice what was spent when that is more
// (the page's first drawing has the same from api/routes/dashboard.py raise_suggestion)
function raiseSuggestion(budget) {
  const amounts = [Number(budget.spentUsd || 0), Number(budget.maxCostUsd || 0)]
    .filter(Number.isFinite);
  const doubled = 2 * Math.max(0, ...amounts);
  return doubled > 0 ? String(Number(doubled.toPrecision(12))) : "";
}

// --- agents page ------------------------------------------------------------------------------
function agentsPage() {
  for (const button of document.querySelectorAll("button.agent-action")) {
    button.addEventListener("click", async () => {
      const id = button.closest("tr").dataset.agent;
      const result = document.getElementById("action-result");
      try {
        await api("PATCH", `/agents/${encodeURIComponent(id)}`, { status: button.dataset.status });
        say(result, `${id} is now ${button.dataset.status}.`, true);
        setTimeout(() => location.reload(), 300);
      } catch (error) {
        say(result, error.message, false);
      }
    });
  }
}

// --- sessions page: ages in words ---------------------------------------------------------------
function sessionsPage() {
  for (const td of document.querySelectorAll("td.age")) {
    const seconds = (Date.now() - Date.parse(td.dataset.start)) / 1000;
    if (Number.isNaN(seconds)) continue;
    td.textContent = seconds < 60 ? `${Math.round(seconds)} s ago`
      : seconds < 3600 ? `${Math.round(seconds / 60)} min ago`
      : seconds < 86400 ? `${Math.round(seconds / 3600)} h ago`
      : `${Math.round(seconds / 86400)} d ago`;
  }
}

const page = document.body.dataset.page;
if (page === "session") sessionPage();
if (page === "agents") agentsPage();
if (page === "sessions") sessionsPage();
