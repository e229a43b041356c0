// Meowstik dashboard: a step's transcript under its row of the session page's steps table, and
// the step's tokens. The transcript (GET .../sessions/<id>/steps/<step>/transcript, read through
// the `read` function the page hands in) lists, per agent that ran the step, its model calls
// (model, tokens, duration, text, the tool calls it asked for; the chat's prompt collapsed), its
// tool calls (arguments, result, ok or error) and the calls that began without a result yet.
// Everything in it comes from models, tools and users: it is written with textContent only.
"use strict";

// Returns { update(id, step), usage(cell, usage) }: `update` is called with each step of every
// session snapshot; `usage` draws a step's tokens into its cell of the steps table.
function transcriptPanels(read) {
  // a transcript is offered for a step that made model calls (its snapshot has usage), one that
  // runs or waits for an operator now, and one that failed after running (its calls are there)
  const LIVE = new Set(["running", "waiting_for_input"]);
  const panels = new Map(); // step id -> {id, row, details, body, note, status, loadedStatus, ...}

  function make(tag, text, className) {
    const made = document.createElement(tag);
    if (text !== undefined && text !== null) made.textContent = String(text);
    if (className) made.className = className;
    return made;
  }

  function plural(count, word) {
    return `${count.toLocaleString("en-US")} ${word}${count === 1 ? "" : "s"}`;
  }

  function offered(step) {
    return Boolean(step.usage) || LIVE.has(step.status) ||
      (step.status === "failed" && step.attempts > 0);
  }

  // --- the steps table's Tokens cell (session.html draws the same on page load) ---------------
  function usage(cell, counts) {
    if (!cell) return;
    if (!counts) {
      cell.replaceChildren();
      cell.removeAttribute("title");
      return;
    }
    const calls = [plural(counts.modelCalls || 0, "model call")];
    if (counts.replayedCalls) calls.push(`${counts.replayedCalls} replayed`);
    if (counts.uncountedCalls) calls.push(`${counts.uncountedCalls} uncounted`);
    const total = make("span", (counts.totalTokens || 0).toLocaleString("en-US"), "tokens");
    total.dataset.field = "total-tokens";
    const detail = make("small", calls.join(", "), "token-calls");
    detail.dataset.field = "model-calls";
    cell.replaceChildren(total, make("br"), detail);
    const lines = [`${counts.promptTokens || 0} prompt + ${counts.completionTokens || 0} completion`];
    for (const [model, byModel] of Object.entries(counts.byModel || {})) {
      lines.push(`${model}: ${byModel.totalTokens} tokens`);
    }
    cell.setAttribute("title", lines.join("\n"));
  }

  // --- panels ---------------------------------------------------------------------------------
  function bind(row) {
    const id = row.dataset.transcriptStep;
    const details = row.querySelector("details.transcript");
    const panel = {
      id,
      row,
      details,
      body: row.querySelector(".transcript-body"),
      note: row.querySelector(".transcript-note"),
      status: row.dataset.status || "",
      loadedStatus: null,
      shown: null,
      loading: false,
      again: false,
    };
    details.addEventListener("toggle", () => { if (details.open) load(panel); });
    panels.set(id, panel);
    return panel;
  }

  // the same markup as session.html's transcript rows
  function create(id) {
    const stepRow = document.querySelector(`#steps tr[data-step="${CSS.escape(id)}"]`);
    if (!stepRow) return null;
    const row = make("tr", null, "transcript-row");
    row.dataset.transcriptStep = id;
    const td = make("td");
    td.colSpan = document.querySelectorAll("#steps thead th").length || 1;
    const details = make("details", null, "transcript");
    const summary = make("summary", "Transcript");
    summary.append(" ", make("small", "model and tool calls", "transcript-note"));
    const body = make("div", null, "transcript-body");
    body.dataset.state = "idle";
    details.append(summary, body);
    td.appendChild(details);
    row.appendChild(td);
    let after = stepRow; // under the step's row, below its live text if it has one
    while (after.nextElementSibling && after.nextElementSibling.classList.contains("live-row")) {
      after = after.nextElementSibling;
    }
    after.after(row);
    return bind(row);
  }

  function update(id, step) {
    let panel = panels.get(id);
    if (!panel) {
      if (!offered(step)) return;
      panel = create(id);
      if (!panel) return;
    }
    panel.status = step.status;
    panel.row.dataset.status = step.status;
    // an open panel follows a step that runs, and reads once more when its status changes
    if (panel.details.open && (LIVE.has(step.status) || panel.loadedStatus !== step.status)) {
      load(panel);
    }
  }

  async function load(panel) {
    if (panel.loading) {
      panel.again = true;
      return;
    }
    panel.loading = true;
    const status = panel.status;
    if (panel.shown === null) {
      panel.body.dataset.state = "loading";
      panel.note.textContent = "loading…";
    }
    try {
      const transcript = await read(panel.id);
      panel.loadedStatus = status;
      const text = JSON.stringify(transcript);
      if (text !== panel.shown) {
        panel.shown = text;
        draw(panel, transcript);
      }
      panel.body.dataset.state = "loaded";
    } catch (error) {
      panel.body.dataset.state = "error";
      const problem = make("p", `Could not read the transcript: ${error.message}`, "problem");
      panel.body.replaceChildren(problem);
      panel.shown = null;
      panel.note.textContent = "not read";
    } finally {
      panel.loading = false;
      if (panel.again) {
        panel.again = false;
        load(panel);
      }
    }
  }

  // --- drawing --------------------------------------------------------------------------------
  function draw(panel, transcript) {
    // prompts the reader opened stay open when the transcript is drawn again
    const opened = new Set(
      [...panel.body.querySelectorAll("details.prompt[open]")].map((d) => d.dataset.key));
    const agents = transcript.agents || [];
    let calls = 0;
    let tokens = 0;
    const parts = [];
    for (const agent of agents) {
      calls += agent.calls.length;
      tokens += agent.usage ? agent.usage.totalTokens : 0;
      parts.push(agentSection(agent, opened));
    }
    if (!parts.length) {
      parts.push(make("p", LIVE.has(panel.status)
        ? "No model or tool call recorded yet." : "No model or tool call was recorded.", "none"));
    }
    panel.body.dataset.calls = String(calls);
    panel.body.replaceChildren(...parts);
    const note = [plural(calls, "call")];
    if (tokens) note.push(plural(tokens, "token"));
    if (LIVE.has(panel.status)) note.push("updating while the step runs");
    panel.note.textContent = note.join(" · ");
  }

  function agentSection(agent, opened) {
    const section = make("section", null, "transcript-agent");
    section.dataset.agent = agent.agentId;
    const models = agent.calls.filter((c) => c.kind === "model").length;
    const tools = agent.calls.filter((c) => c.kind === "tool").length;
    const heading = make("h4");
    heading.append(make("span", agent.agentId, "agent-id"));
    const facts = [plural(models, "model call"), plural(tools, "tool call")];
    if (agent.usage) facts.push(tokenText(agent.usage));
    heading.append(" ", make("small", facts.join(" · "), "agent-facts"));
    const list = make("ol", null, "calls");
    for (const call of agent.calls) list.appendChild(callItem(agent.agentId, call, opened));
    section.append(heading, list);
    return section;
  }

  function tokenText(counts) {
    return `${plural(counts.totalTokens, "token")} ` +
      `(${counts.promptTokens} prompt + ${counts.completionTokens} completion)`;
  }

  function duration(ms) {
    if (typeof ms !== "number") return null;
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
  }

  function clock(at) {
    if (typeof at !== "string") return null;
    const time = at.match(/T(\d\d:\d\d:\d\d(\.\d{1,3})?)/);
    return time ? time[1] : at;
  }

  function head(call, name) {
    const line = make("div", null, "call-head");
    line.append(make("code", call.call, "call-id"), " ",
      make("span", call.kind, `call-kind kind-${call.kind}`));
    if (name) line.append(" ", make("strong", name, "call-name"));
    return line;
  }

  function meta(line, facts) {
    const shown = facts.filter((fact) => fact);
    if (shown.length) line.append(" ", make("span", shown.join(" · "), "call-meta"));
  }

  // JSON text as the model wrote it, indented when it parses
  function argumentsText(text) {
    if (typeof text !== "string") return pretty(text);
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch (error) {
      return text;
    }
  }

  function pretty(value) {
    return value === undefined ? "" : JSON.stringify(value, null, 2);
  }

  function labelled(label, text, className) {
    const box = make("div", null, "call-field");
    const pre = make("pre", text, className);
    pre.dataset.field = className;
    box.append(make("small", label, "field-label"), pre);
    return box;
  }

  function callItem(agentId, call, opened) {
    const item = make("li", null, `call call-${call.kind}`);
    item.dataset.call = call.call;
    item.dataset.kind = call.kind;
    if (call.at) item.setAttribute("title", call.at);
    if (call.kind === "model") modelCall(item, agentId, call, opened);
    else if (call.kind === "tool") toolCall(item, call);
    else pendingCall(item, call);
    return item;
  }

  function modelCall(item, agentId, call, opened) {
    const line = head(call, call.model || call.endpoint || "model");
    meta(line, [
      call.usage ? tokenText(call.usage) : "tokens not counted",
      duration(call.durationMs),
      call.finishReason ? `finish: ${call.finishReason}` : null,
      call.endpoint && call.endpoint !== "default" ? `endpoint ${call.endpoint}` : null,
      clock(call.at),
    ]);
    item.appendChild(line);
    if (Array.isArray(call.prompt) && call.prompt.length) {
      const prompt = make("details", null, "prompt");
      prompt.dataset.key = `${agentId}|${call.call}`;
      prompt.open = opened.has(prompt.dataset.key);
      prompt.appendChild(make("summary", `prompt · ${plural(call.prompt.length, "message")}`));
      for (const message of call.prompt) {
        const box = make("div", null, "message");
        const content = message.content;
        box.append(make("span", message.role || "?", "role"),
          make("pre", typeof content === "string" ? content : pretty(content), "message-text"));
        prompt.appendChild(box);
      }
      item.appendChild(prompt);
    }
    if (call.content !== null && call.content !== undefined && call.content !== "") {
      item.appendChild(labelled("text", call.content, "content"));
    }
    if (call.toolCalls && call.toolCalls.length) {
      const asked = make("ul", null, "asked");
      for (const wanted of call.toolCalls) {
        const entry = make("li");
        entry.dataset.toolCall = wanted.id;
        entry.append(make("small", "asks for ", "field-label"), make("code", wanted.name, "tool-name"));
        const pre = make("pre", argumentsText(wanted.arguments), "arguments");
        pre.dataset.field = "arguments";
        entry.appendChild(pre);
        asked.appendChild(entry);
      }
      item.appendChild(asked);
    }
  }

  function toolCall(item, call) {
    item.classList.add(call.ok === false ? "failed" : "succeeded");
    const line = head(call, call.tool);
    line.append(" ", make("span", call.ok === false ? "error" : "ok",
      `badge call-ok ${call.ok === false ? "status-failed" : "status-completed"}`));
    meta(line, [duration(call.durationMs), clock(call.at)]);
    item.appendChild(line);
    const io = make("div", null, "call-io");
    io.append(labelled("arguments", argumentsText(call.arguments), "arguments"),
      labelled("result", pretty(call.result), "result"));
    item.appendChild(io);
  }

  function pendingCall(item, call) {
    const line = head(call, null);
    const words = call.state === "waiting_for_operator"
      ? "waiting for an operator: began in an earlier run without a result"
      : "running: began, no result yet";
    line.append(" ", make("span", words, `pending-state state-${call.state || "running"}`));
    meta(line, [clock(call.at)]);
    item.appendChild(line);
  }

  for (const row of document.querySelectorAll("#steps tr.transcript-row")) bind(row);
  return { update, usage };
}
