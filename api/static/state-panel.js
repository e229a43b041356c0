// Meowstik dashboard: the session page's State panel. The server draws it on page load
// (session.html); this redraws it from the session's state (GET .../state, read through the
// `read` function the page hands in) and counts temporary entries down to their expiry. Keys,
// values and agent ids come from agents and users: they are written with textContent only.
"use strict";

// A value in one line, cut to `limit` characters (as the server's compact_json filter).
const STATE_PREVIEW_CHARS = 120;
const STATE_TOOLTIP_CHARS = 2000;
function compactJson(value, limit) {
  const text = JSON.stringify(value === undefined ? null : value);
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}

// Seconds left, rounded up, in the two largest units (as the server's time_left filter).
function timeLeft(seconds) {
  const whole = Math.ceil(seconds);
  if (whole <= 0) return "expired";
  if (whole < 60) return `${whole} s`;
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${whole % 60} s`;
  if (whole < 86400) return `${Math.floor(whole / 3600)} h ${Math.floor((whole % 3600) / 60)} min`;
  return `${Math.floor(whole / 86400)} d ${Math.floor((whole % 86400) / 3600)} h`;
}

function element(tag, text, className) {
  const made = document.createElement(tag);
  if (text !== undefined && text !== null) made.textContent = String(text);
  if (className) made.className = className;
  return made;
}

// `panel` is the #state element (its data-now-ms is the server's clock at render time);
// `read` resolves to the session's state view. Returns { load, schedule }: read and redraw now,
// or soon (several calls within the delay make one read).
function statePanel(panel, read) {
  // the server's clock minus ours: expiries count down in the server's time
  const skewMs = (Number(panel.dataset.nowMs) - Date.now()) || 0;
  let timer = null;
  let due = 0;
  let latest = 0;
  let shown = null;

  function schedule(delayMs = 100) {
    const at = Date.now() + delayMs;
    if (timer !== null) {
      if (due <= at) return; // a read already comes sooner
      clearTimeout(timer);
    }
    due = at;
    timer = setTimeout(() => { timer = null; load(); }, delayMs);
  }

  async function load() {
    const mine = ++latest;
    let view;
    try {
      view = await read();
    } catch (error) {
      return; // the next event or poll tries again
    }
    if (mine !== latest) return; // a newer read is under way: its answer wins
    const text = JSON.stringify(view);
    if (text === shown) return;
    shown = text;
    render(view);
  }

  function render(view) {
    const agents = Object.keys(view.private).sort();
    const shared = Object.keys(view.shared).length;
    const temporary = Object.keys(view.temporary).length;
    if (!shared && !temporary && !agents.length) {
      panel.replaceChildren(element("p", "No state yet.", "none"));
      return;
    }
    panel.replaceChildren(
      group("shared", "Shared",
        shared ? table("shared", view.shared, false) : element("p", "No shared entries.", "none")),
      group("temporary", "Temporary",
        temporary ? table("temporary", view.temporary, true)
          : element("p", "No temporary entries.", "none")),
      group("private", "Private, by agent",
        ...(agents.length ? agents.map((id) => agentEntries(id, view.private[id]))
          : [element("p", "No private entries.", "none")])),
    );
  }

  function group(scope, title, ...children) {
    const section = element("section", null, "state-group");
    section.dataset.scope = scope;
    section.append(element("h3", title), ...children);
    return section;
  }

  function agentEntries(agentId, entries) {
    const box = element("div", null, "state-agent");
    box.dataset.agent = agentId;
    box.append(element("h4", agentId), table("private", entries, false));
    return box;
  }

  function table(scope, entries, countdown) {
    const made = element("table", null, "state-table");
    made.dataset.scope = scope;
    const head = element("tr");
    const titles = ["Key", "Value", "Version", "Updated by", "Updated at"];
    for (const title of countdown ? [...titles, "Time left"] : titles) {
      head.appendChild(element("th", title));
    }
    made.createTHead().appendChild(head);
    const body = made.createTBody();
    for (const key of Object.keys(entries).sort()) {
      body.appendChild(row(key, entries[key], countdown));
    }
    return made;
  }

  function row(key, entry, countdown) {
    const tr = element("tr");
    tr.dataset.key = key;
    const value = element("code", compactJson(entry.value, STATE_PREVIEW_CHARS), "state-value");
    value.title = compactJson(entry.value, STATE_TOOLTIP_CHARS);
    const cells = {
      key: element("code", key),
      value,
      version: entry.version,
      by: entry.updatedBy || "",
      at: entry.updatedAt || "",
    };
    for (const [field, content] of Object.entries(cells)) {
      const td = content instanceof Node ? element("td") : element("td", content);
      if (content instanceof Node) td.appendChild(content);
      td.dataset.field = field;
      tr.appendChild(td);
    }
    if (countdown) {
      const left = element("td");
      left.dataset.field = "left";
      left.dataset.expires = entry.expiresAt || "";
      tr.appendChild(left);
      if (showLeft(left)) tr.classList.add("expired");
    }
    return tr;
  }

  // writes the time left into a countdown cell; true once it has passed
  function showLeft(td) {
    const expires = Date.parse(td.dataset.expires);
    if (Number.isNaN(expires)) return false;
    const seconds = (expires - (Date.now() + skewMs)) / 1000;
    td.textContent = timeLeft(seconds);
    return seconds <= 0;
  }

  // every second: count down, mark what passed as expired, and read the state again shortly
  // after, so the server's answer (without the entry) replaces it
  function tick() {
    let passed = false;
    for (const td of panel.querySelectorAll('td[data-field="left"]')) {
      const tr = td.closest("tr");
      if (showLeft(td) && !tr.classList.contains("expired")) {
        tr.classList.add("expired");
        passed = true;
      }
    }
    if (passed) schedule(1000);
  }
  setInterval(tick, 1000);
  tick();

  return { load, schedule };
}
