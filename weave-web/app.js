// Weave's browser UI: watch and steer a session's agents through the daemon's HTTP/SSE API only
// (no private back door: whatever this page does, an SDK can do).
//
// State flows one way: SSE streams and API answers update `state`, and `render*` functions draw
// it. Records are kept by seq, so each appears exactly once however the streams reconnect.

const $ = (id) => document.getElementById(id);

const state = {
  sessions: new Map(), // id -> session summary
  selected: null, // session id
  records: new Map(), // seq -> record (of the selected session)
  lastSeq: 0,
  agents: new Map(), // id -> agent
  busy: new Map(), // agent id -> relay tasks running/blocked
  doing: new Map(), // agent id -> what it said it is doing (agent.activity)
  receipts: new Map(), // message id -> Map(agent id -> receipt state)
  me: null, // {id, name} the person, in the selected session
  replyTo: null, // {fields, label, step} what the next message answers
  loadedHead: Infinity, // seq of the head when the session was opened: older rows are not news
  waiting: [], // what waits on the person in the selected session (GET .../inbox?waiting=true)
  unread: new Map(), // session id -> messages the person there has not read
  conn: { sessions: "offline", events: "idle" }, // a stream not opened yet is idle
};

// ---- errors: shown, never swallowed --------------------------------------------------------

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => (box.hidden = true), 8000);
}

async function api(method, path, body) {
  let resp;
  try {
    resp = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body ? { "content-type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch (e) {
    showError(`${method} ${path}: the daemon is unreachable (${e.message})`);
    throw e;
  }
  const text = await resp.text();
  const data = text ? JSON.parse(text) : null;
  if (!resp.ok) {
    const detail = data && data.detail ? `${data.code}: ${data.detail}` : `${resp.status}`;
    showError(`${method} ${path} refused — ${detail}`);
    throw new Error(detail);
  }
  return data;
}

// ---- connection indicator ------------------------------------------------------------------

function setConn(stream, value) {
  state.conn[stream] = value;
  const values = Object.values(state.conn);
  const overall = values.includes("reconnecting")
    ? "reconnecting"
    : values.every((v) => v === "live" || v === "idle")
      ? "live"
      : "offline";
  const el = $("conn");
  el.className = `conn ${overall}`;
  el.dataset.state = overall;
  el.textContent = overall;
}

/// An EventSource that reopens itself (with the cursor `since()` gives) after any error, with
/// backoff: a daemon restart makes browsers give up on a plain EventSource.
function liveStream(name, url, since, handlers) {
  let source = null;
  let closed = false;
  let delay = 250;
  const open = () => {
    if (closed) return;
    const cursor = since();
    source = new EventSource(cursor === null ? url : `${url}?since=${cursor}`);
    source.onopen = () => {
      delay = 250;
      setConn(name, "live");
    };
    for (const [event, handle] of Object.entries(handlers)) {
      source.addEventListener(event, (e) => handle(e));
    }
    source.onerror = () => {
      source.close();
      if (closed) return;
      setConn(name, "reconnecting");
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 4000);
    };
  };
  open();
  return {
    close() {
      closed = true;
      if (source) source.close();
      setConn(name, "idle");
    },
  };
}

// ---- sessions ------------------------------------------------------------------------------

function renderSessions() {
  const ul = $("sessions");
  // Redrawing must not take keyboard focus away from the session it was on.
  const focused = ul.contains(document.activeElement) ? document.activeElement.dataset.id : null;
  ul.replaceChildren(
    ...[...state.sessions.values()].map((s) => {
      const li = document.createElement("li");
      li.dataset.id = s.id;
      li.className = `${s.status}${s.id === state.selected ? " selected" : ""}`;
      li.innerHTML = `<span class="name"></span><span class="count">${s.online_count}/${s.agent_count}</span>`;
      li.querySelector(".name").textContent = s.name || s.id.slice(0, 8);
      const unread = state.unread.get(s.id) || 0;
      if (unread) {
        const badge = document.createElement("span");
        badge.className = "unread";
        badge.textContent = unread;
        badge.setAttribute("aria-label", `${unread} unread`);
        li.querySelector(".count").before(badge);
      }
      li.title = `${s.id} — ${s.online_count} online of ${s.agent_count} agents`;
      li.onclick = () => select(s.id);
      // Reachable by keyboard: Tab to it, Enter or Space opens it.
      li.tabIndex = 0;
      li.setAttribute("role", "button");
      li.setAttribute("aria-current", s.id === state.selected ? "true" : "false");
      li.onkeydown = (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          select(s.id);
        }
      };
      return li;
    }),
  );
  if (focused) {
    const li = ul.querySelector(`li[data-id="${CSS.escape(focused)}"]`);
    if (li) li.focus();
  }
}

liveStream("sessions", "/api/sessions/stream", () => null, {
  snapshot: (e) => {
    state.sessions = new Map(JSON.parse(e.data).sessions.map((s) => [s.id, s]));
    renderSessions();
    refreshUnread();
  },
  session: (e) => {
    const s = JSON.parse(e.data);
    state.sessions.set(s.id, s);
    renderSessions();
    if (s.id === state.selected) renderTitle();
  },
});

$("new-session").onsubmit = async (ev) => {
  ev.preventDefault();
  const s = await api("POST", "/api/sessions", { name: $("new-session-name").value });
  $("new-session-name").value = "";
  state.sessions.set(s.id, s);
  renderSessions();
  select(s.id);
};

$("close-session").onclick = () => api("POST", `/api/sessions/${state.selected}/close`);

function renderTitle() {
  const s = state.sessions.get(state.selected);
  $("session-title").textContent = s ? `${s.name || s.id} (${s.status})` : "No session selected";
  $("close-session").hidden = !s || s.status === "closed";
}

// ---- the selected session: timeline, agents ------------------------------------------------

let eventStream = null;
let inboxStream = null;

function select(id) {
  if (eventStream) eventStream.close();
  if (inboxStream) inboxStream.close();
  state.selected = id;
  state.records = new Map();
  state.lastSeq = 0;
  state.loadedHead = Infinity;
  state.agents = new Map();
  state.busy = new Map();
  state.doing = new Map();
  state.receipts = new Map();
  state.me = JSON.parse(localStorage.getItem(`weave.me.${id}`) || "null");
  state.replyTo = null;
  state.waiting = [];
  // Rows are drawn once per selection: switching back to a session draws its rows again.
  drawn.clear();
  $("timeline").replaceChildren();
  $("relays").replaceChildren();
  renderReplyTo();
  scheduleRelays();
  renderSessions();
  renderTitle();
  renderMe();
  eventStream = liveStream("events", `/api/sessions/${id}/events/stream`, () => (state.lastSeq ? state.lastSeq : null), {
    snapshot: (e) => {
      const snap = JSON.parse(e.data);
      for (const a of snap.agents) state.agents.set(a.id, a);
      state.lastSeq = Math.max(state.lastSeq, Number(e.lastEventId));
      // The first snapshot of this selection marks where news starts.
      if (state.loadedHead === Infinity) state.loadedHead = Number(e.lastEventId);
      // The snapshot starts at the head: load what came before, once.
      loadHistory(id, Number(e.lastEventId));
      scheduleRender();
    },
    gap: (e) => showError(`some events are no longer kept: ${e.data}`),
    ...Object.fromEntries(RECORD_TYPES.map((t) => [t, (e) => addRecord(JSON.parse(e.data))])),
  });
  if (state.me) openInbox();
  renderInbox();
  scheduleInbox();
}

async function loadHistory(id, head) {
  let since = 0;
  while (since < head && state.selected === id) {
    const page = await api("GET", `/api/sessions/${id}/events?since=${since}&limit=1000`);
    if (state.selected !== id) return;
    for (const r of page.records) if (r.seq <= head) addRecord(r);
    if (!page.records.length) break;
    since = page.next;
  }
}

const RECORD_TYPES = [
  "session.created", "session.closed", "agent.added", "agent.updated", "agent.removed",
  "agent.online", "agent.offline", "agents.ordered", "message.send", "action.submit",
  "action.result", "delivery.failed", "relay.submit", "relay.accepted", "relay.done",
  "task.updated", "task.done", "loop.suppressed", "receipt.updated", "agent.activity",
];

/// Records that change what other rows show rather than being rows of their own.
const NOT_ROWS = new Set(["receipt.updated", "agent.activity"]);
const TICKS = { queued: "·", delivered: "✓", read: "✓✓", answered: "↩" };

function addRecord(record) {
  if (state.records.has(record.seq)) return; // exactly once
  state.records.set(record.seq, record);
  state.lastSeq = Math.max(state.lastSeq, record.seq);
  const env = record.envelope;
  const p = env.payload || {};
  switch (env.type) {
    case "agent.added":
    case "agent.online":
    case "agent.offline":
    case "agent.updated": {
      const a = state.agents.get(p.id) || { id: p.id, kind: "agent", queued: 0 };
      if (p.name !== undefined) a.name = p.name;
      if (p.kind) a.kind = p.kind;
      if (env.type === "agent.online") a.status = "online";
      if (env.type === "agent.offline") a.status = "offline";
      if (env.type === "agent.added" && !a.status) a.status = "offline";
      state.agents.set(p.id, a);
      break;
    }
    case "agent.removed":
      state.agents.delete(p.id);
      break;
    case "task.updated":
      if (p.status === "running" || p.status === "blocked" || p.status === "ready") state.busy.set(p.agent_id, p.relay_id);
      else state.busy.delete(p.agent_id);
      break;
    case "task.done":
      state.busy.delete(p.agent_id);
      break;
    case "agents.ordered":
      refreshAgents();
      break;
    case "agent.activity":
      if (p.activity === "busy") state.doing.set(p.id, p.doing || "working");
      else state.doing.delete(p.id);
      break;
    case "receipt.updated":
      for (const m of p.messages || []) {
        const per = state.receipts.get(m.id) || new Map();
        per.set(p.agent, p.state);
        state.receipts.set(m.id, per);
        drawTicks(m.id);
      }
      break;
  }
  // What waits on the person changes with what is sent to them, their receipts and stops.
  const me = state.me && state.me.id;
  if (me && (env.dst === me || env.type === "loop.suppressed" || (env.type === "receipt.updated" && p.agent === me) || env.src === me)) scheduleInbox();
  // Relay steps are answered by results and by replies naming them.
  if (/^(relay\.|task\.|action\.)/.test(env.type) || (env.type === "message.send" && p.reply_to_action_id)) scheduleRelays();
  scheduleRender();
}

let renderQueued = false;
const drawn = new Set();
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderTimeline();
    renderAgents();
  });
}

function describe(env) {
  const p = env.payload || {};
  const name = (id) => (state.agents.get(id) && state.agents.get(id).name) || id;
  switch (env.type) {
    case "message.send":
      return typeof p === "string" ? p : p.text || "";
    case "action.submit":
      return (p.actions || []).map((a) => (a.type === "control" ? `[${a.command}]` : a.text)).join(" · ");
    case "action.result":
      return `${p.status}${p.detail ? `: ${p.detail}` : ""}`;
    case "relay.submit":
      if (p.done) return `finish relay ${p.relay_id}`;
      if (p.cancel) return `cancel relay ${p.relay_id}`;
      return `relay ${p.relay_id}: ${(p.actions || []).map((a) => a.plan_step_id || a.type).join(" → ")}`;
    case "relay.accepted":
      return `relay ${p.relay_id} accepted: ${p.accepted.action_count} steps for ${p.accepted.target_count} targets`;
    case "relay.done":
      return `relay ${p.relay_id} ${p.status}${p.summary ? `: ${p.summary}` : ""}`;
    case "task.updated":
      return `task of ${name(p.agent_id)} ${p.status}`;
    case "task.done":
      return `task of ${name(p.agent_id)} done`;
    case "loop.suppressed":
      return `loop stopped (${p.rule}, hop ${p.hop}, limit ${p.limit}): ${name(p.from)} → ${(p.to || []).map(name).join(", ")}, chain ${p.chain_id}`;
    case "delivery.failed":
      return `not delivered to ${name(p.dst)}: ${p.reason}`;
    case "agent.added":
      return `${p.name || p.id} joined (${p.kind || "agent"})`;
    case "agent.removed":
      return `${p.name || p.id} left`;
    case "agent.updated":
      return `${p.previous_name || p.id} is now ${p.name}`;
    case "agent.online":
    case "agent.offline":
      return `${name(p.id)} ${env.type.slice(6)}${p.reason ? ` (${p.reason})` : ""}`;
    default:
      return "";
  }
}

function rowClass(env) {
  const p = env.payload || {};
  if (env.type === "loop.suppressed") return "loop";
  if (env.type.startsWith("relay.") || (env.meta && env.meta.weave && env.meta.weave.relay_id)) return "relay";
  if (env.type.startsWith("task.")) return "task";
  if (p.kind === "reply") return "reply";
  return "";
}

/// The ticks of a message row: the furthest state each recipient reached.
function drawTicks(id) {
  const li = document.querySelector(`#timeline li[data-message="${CSS.escape(id)}"]`);
  if (!li) return;
  const per = state.receipts.get(id);
  const span = li.querySelector(".ticks");
  if (!per || !span) return;
  const name = (a) => (state.agents.get(a) && state.agents.get(a).name) || a;
  const states = [...per.entries()];
  span.textContent = states.map(([, st]) => TICKS[st] || st).join(" ");
  span.title = states.map(([a, st]) => `${name(a)}: ${st}`).join(", ");
  span.setAttribute("aria-label", span.title);
}

/// The ids receipts are kept under for a row: the message's, or each action's of a group.
function receiptIds(env) {
  if (env.type === "message.send") return [env.id];
  if (env.type === "action.submit") return ((env.payload || {}).actions || []).map((a) => a.action_id).filter(Boolean);
  return [];
}

/// How the person answers a row: a message gets a reply to its sender inside its conversation;
/// a relay step given to the person gets an answer naming the step (the relay proceeds).
function answerFor(env, from) {
  const p = env.payload || {};
  const me = state.me && state.me.id;
  if (env.type === "message.send" && env.src !== me && env.src !== "weave") {
    const fields = { agent_ids: [env.src], kind: "reply", parent_message_id: env.id };
    if (p.context_id) fields.context_id = p.context_id;
    return { fields, label: `${from}: ${describe(env)}`, toYou: !!me && env.dst === me, step: false };
  }
  if (env.type === "action.submit" && me) {
    const mine = (p.actions || []).filter((a) => a.dst === me && a.type === "message");
    if (!mine.length) return null;
    const last = mine[mine.length - 1];
    const ctx = p.context || {};
    const fields = { agent_ids: [ctx.owner_id || env.src], kind: "reply", reply_to_action_id: last.action_id };
    if (ctx.context_id) fields.context_id = ctx.context_id;
    return { fields, label: `${from} asks: ${last.text || ""}`, toYou: true, step: true };
  }
  return null;
}

function startReply(answer) {
  if (!state.me) return showError("join as a person first (right-hand pane) to answer");
  state.replyTo = answer;
  renderReplyTo();
  $("send-text").focus();
}

function renderReplyTo() {
  const bar = $("reply-to");
  if (!bar) return;
  bar.hidden = !state.replyTo;
  $("reply-to-text").textContent = state.replyTo ? `${state.replyTo.step ? "Answering" : "Replying to"} ${state.replyTo.label}` : "";
}

/// New messages to the person are read out by screen readers (an aria-live region).
function announce(text) {
  const box = $("announce");
  if (box) box.textContent = text.slice(0, 200);
}

function renderTimeline() {
  const ol = $("timeline");
  const fresh = [];
  for (const [seq, r] of state.records) {
    if (drawn.has(`${state.selected}:${seq}`)) continue;
    drawn.add(`${state.selected}:${seq}`);
    const env = r.envelope;
    if (NOT_ROWS.has(env.type)) continue;
    const li = document.createElement("li");
    li.dataset.seq = seq;
    li.dataset.type = env.type;
    li.dataset.agents = [env.src, env.dst].filter(Boolean).join(" ");
    li.className = rowClass(env);
    const from = env.src === "weave" ? "weave" : (state.agents.get(env.src) || {}).name || env.src;
    const to = env.dst ? ` → ${(state.agents.get(env.dst) || {}).name || env.dst}` : "";
    const kind = env.payload && env.payload.kind && env.type === "message.send" ? ` (${env.payload.kind})` : "";
    li.innerHTML = `<span class="seq"></span><span class="kind"></span><span class="who"></span><span class="text"></span><span class="ticks"></span>`;
    const ids = receiptIds(env);
    if (ids.length === 1) li.dataset.message = ids[0];
    li.querySelector(".seq").textContent = seq;
    li.querySelector(".kind").textContent = env.type + kind;
    li.querySelector(".who").textContent = from + to;
    li.querySelector(".text").textContent = describe(env);
    li.title = r.ts;
    const answer = answerFor(env, from);
    if (answer) {
      if (answer.toYou) {
        li.classList.add("to-you");
        const mark = document.createElement("span");
        mark.className = "to-you-mark";
        mark.textContent = "to you";
        li.querySelector(".who").prepend(mark);
        if (r.seq > state.loadedHead) announce(`${from}: ${describe(env)}`);
      }
      const b = document.createElement("button");
      b.className = "reply-button";
      b.textContent = answer.step ? "Answer" : "Reply";
      b.setAttribute("aria-label", `${b.textContent} ${from}: ${describe(env).slice(0, 80)}`);
      b.onclick = () => startReply(answer);
      li.append(b);
    }
    fresh.push(li);
  }
  if (fresh.length) {
    for (const li of fresh) if (li.dataset.message) queueMicrotask(() => drawTicks(li.dataset.message));
    // Keep the DOM in seq order whatever order records arrived in.
    const all = [...ol.children, ...fresh].sort((a, b) => Number(a.dataset.seq) - Number(b.dataset.seq));
    const newestLast = $("sort").value !== "desc";
    if (!newestLast) all.reverse();
    // Follow new records when the reader is at the end; leave them be when they scrolled away.
    const atEnd = ol.scrollTop + ol.clientHeight >= ol.scrollHeight - 40;
    ol.replaceChildren(...all);
    applyFilters();
    if (newestLast && atEnd) ol.scrollTop = ol.scrollHeight;
  }
}

function applyFilters() {
  const text = $("filter-text").value.toLowerCase();
  const kind = $("filter-kind").value;
  const agent = $("filter-agent").value;
  for (const li of $("timeline").children) {
    const ok =
      (!text || li.textContent.toLowerCase().includes(text)) &&
      (!kind || li.dataset.type.startsWith(kind)) &&
      (!agent || li.dataset.agents.split(" ").includes(agent));
    li.hidden = !ok;
  }
}
for (const id of ["filter-text", "filter-kind", "filter-agent"]) $(id).oninput = applyFilters;
$("sort").onchange = () => {
  const ol = $("timeline");
  ol.replaceChildren(...[...ol.children].reverse());
};

// ---- relays: per-target action states ------------------------------------------------------

let relaysTimer = null;
function scheduleRelays() {
  clearTimeout(relaysTimer);
  relaysTimer = setTimeout(refreshRelays, 100);
}

async function refreshRelays() {
  const id = state.selected;
  const { relays } = await api("GET", `/api/sessions/${id}/relays`);
  if (state.selected !== id) return;
  const name = (a) => (state.agents.get(a) || {}).name || a;
  $("relays").replaceChildren(
    ...relays.map((r) => {
      const li = document.createElement("li");
      li.dataset.relay = r.relay_id;
      li.dataset.status = r.status;
      const head = document.createElement("div");
      head.className = "relay-head";
      head.textContent = `${r.relay_id} by ${name(r.owner_id)}: ${r.status}`;
      if (r.status === "active" && state.me && r.owner_id === state.me.id) {
        const stop = document.createElement("button");
        stop.textContent = "cancel";
        stop.onclick = () => api("POST", `/api/sessions/${id}/relays/${encodeURIComponent(r.relay_id)}/cancel`, {});
        head.append(stop);
      }
      li.append(head);
      for (const t of r.tasks) {
        for (const a of r.actions.filter((x) => x.target === t.agent_id)) {
          const step = document.createElement("div");
          const s = a.answered ? "answered" : a.dispatched ? "dispatched" : "held";
          step.className = `step ${s}`;
          step.dataset.target = t.agent_id;
          step.dataset.state = s;
          step.textContent = `${name(t.agent_id)} · ${a.plan_step_id || a.type}: ${s} (task ${t.status})`;
          li.append(step);
        }
      }
      return li;
    }),
  );
}

// ---- agents ---------------------------------------------------------------------------------

async function refreshAgents() {
  const id = state.selected;
  const list = await api("GET", `/api/sessions/${id}/agents`);
  if (state.selected !== id) return;
  state.agents = new Map(list.agents.map((a) => [a.id, a]));
  scheduleRender();
}

function renderAgents() {
  const ul = $("agents");
  const agents = [...state.agents.values()];
  ul.replaceChildren(
    ...agents.map((a, i) => {
      const li = document.createElement("li");
      li.dataset.id = a.id;
      li.dataset.status = a.status;
      li.innerHTML = `<span class="name"></span><span class="status ${a.status}">${a.status}</span>
        <span class="busy"></span><span class="kind-tag count"></span>
        <span class="tools"><button data-act="rename">rename</button><button data-act="up">↑</button><button data-act="down">↓</button></span>`;
      li.querySelector(".name").textContent = a.name || a.id;
      li.querySelector(".kind-tag").textContent = a.kind || "agent";
      li.querySelector(".busy").textContent = state.busy.has(a.id)
        ? `busy in ${state.busy.get(a.id)}`
        : state.doing.has(a.id)
          ? `busy: ${state.doing.get(a.id)}`
          : "";
      li.querySelector('[data-act="rename"]').onclick = async () => {
        const name = prompt(`New name for ${a.name || a.id}`, a.name || "");
        if (name) await api("PATCH", `/api/sessions/${state.selected}/agents/${encodeURIComponent(a.id)}`, { name });
      };
      const move = (delta) => async () => {
        const ids = agents.map((x) => x.id);
        const j = i + delta;
        if (j < 0 || j >= ids.length) return;
        [ids[i], ids[j]] = [ids[j], ids[i]];
        const res = await api("POST", `/api/sessions/${state.selected}/agents/order`, { ids });
        state.agents = new Map(res.agents.map((x) => [x.id, x]));
        scheduleRender();
      };
      li.querySelector('[data-act="up"]').onclick = move(-1);
      li.querySelector('[data-act="down"]').onclick = move(1);
      return li;
    }),
  );
  const select = $("filter-agent");
  const current = select.value;
  select.replaceChildren(new Option("all agents", ""), ...agents.map((a) => new Option(a.name || a.id, a.id)));
  select.value = current;
}

// ---- the person as an agent of the session -------------------------------------------------

function renderMe() {
  $("join").hidden = !state.selected || !!state.me;
  $("send").hidden = !state.me;
  $("me").hidden = !state.me;
  if (state.me) $("me").textContent = `You are ${state.me.name} in this session.`;
}

$("join").onsubmit = async (ev) => {
  ev.preventDefault();
  const me = await api("POST", `/api/sessions/${state.selected}/agents`, { name: $("join-name").value, kind: "human" });
  state.me = { id: me.id, name: me.name };
  localStorage.setItem(`weave.me.${state.selected}`, JSON.stringify(state.me));
  renderMe();
  openInbox();
  scheduleInbox();
};

/// Deliveries to the person arrive on their inbox stream and are acked there; the timeline shows
/// them through the session's records.
function openInbox() {
  const { selected } = state;
  let last = null;
  const ack = (e) => {
    last = Number(e.lastEventId) || last;
    const delivery = JSON.parse(e.data);
    api("POST", `/api/sessions/${selected}/agents/${encodeURIComponent(state.me.id)}/inbox/ack`, { ids: [delivery.corr || delivery.id] }).catch(() => {});
  };
  inboxStream = liveStream("inbox", `/api/sessions/${selected}/agents/${encodeURIComponent(state.me.id)}/inbox/stream`, () => last, {
    "message.send": ack,
    "action.submit": ack,
  });
}

// ---- the person's inbox: what waits on them; unread counts per session --------------------

/// A GET whose failure is not the reader's business (a session's person removed, the daemon
/// restarting): `null` instead of an error banner.
async function quietGet(path) {
  try {
    const resp = await fetch(path, { credentials: "same-origin" });
    return resp.ok ? await resp.json() : null;
  } catch {
    return null;
  }
}

let inboxTimer = null;
function scheduleInbox() {
  clearTimeout(inboxTimer);
  inboxTimer = setTimeout(refreshInbox, 150);
}

/// Fetches what waits on the person (not answered yet) and, while the page is in view, marks
/// what they have not read yet read: looking at the session reads it.
async function refreshInbox() {
  const id = state.selected;
  const me = state.me;
  if (!id || !me) return renderInbox();
  const page = await quietGet(`/api/sessions/${id}/agents/${encodeURIComponent(me.id)}/inbox?waiting=true&limit=100`);
  if (!page || state.selected !== id) return;
  state.waiting = page.messages;
  renderInbox();
  const unread = page.messages.filter((m) => m.state === "queued" || m.state === "delivered").map((m) => m.id);
  if (unread.length && document.visibilityState === "visible") {
    await api("POST", `/api/sessions/${id}/agents/${encodeURIComponent(me.id)}/inbox/read`, { ids: unread }).catch(() => {});
    refreshUnread();
  }
}
document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && scheduleInbox());

/// Loop-guard stops in the person's conversations — ones they own or take part in, or whose
/// causal chain one of their messages started (a person's message always starts a chain, named
/// after it) — that they have not written to the stopped agents (or in that conversation) since.
function stopsForMe() {
  const me = state.me && state.me.id;
  if (!me) return [];
  const dismissed = new Set(JSON.parse(localStorage.getItem(`weave.dismissed.${state.selected}`) || "[]"));
  const records = [...state.records.values()].sort((a, b) => a.seq - b.seq);
  const mine = new Set();
  const stops = [];
  for (const r of records) {
    const env = r.envelope;
    const p = env.payload || {};
    if (env.type === "loop.suppressed") {
      const concerns = p.owner_id === me || p.from === me || (p.to || []).includes(me) || mine.has(p.chain_id);
      if (concerns && !dismissed.has(r.seq)) stops.push(r);
    } else if (env.type === "message.send" && env.src === me) {
      mine.add(env.id);
      // The person spoke to the stopped agents, or in that conversation: the stop is settled.
      for (let i = stops.length - 1; i >= 0; i--) {
        const sp = stops[i].envelope.payload;
        if ((sp.context_id && sp.context_id === p.context_id) || [sp.from, ...(sp.to || [])].includes(env.dst)) stops.splice(i, 1);
      }
    }
  }
  return stops;
}

function renderInbox() {
  const box = $("inbox-box");
  box.hidden = !state.me;
  if (!state.me) return;
  const me = state.me.id;
  const name = (a) => (state.agents.get(a) || {}).name || a;
  const items = [];
  const counts = { step: 0, message: 0, stop: 0 };
  const item = (kind, tag, text, seq, stateName, buttons) => {
    counts[kind]++;
    const li = document.createElement("li");
    li.dataset.kind = kind;
    li.dataset.seq = seq;
    if (stateName) li.dataset.state = stateName;
    li.innerHTML = `<span class="tag"></span><span class="what"></span>`;
    li.querySelector(".tag").textContent = tag;
    li.querySelector(".what").textContent = text;
    for (const [label, act, aria] of buttons) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.dataset.act = label.toLowerCase();
      b.setAttribute("aria-label", `${label}: ${aria.slice(0, 80)}`);
      b.onclick = act;
      li.append(b);
    }
    items.push(li);
  };
  for (const m of state.waiting) {
    const env = m.envelope;
    const p = env.payload || {};
    const from = name(env.src);
    if (env.type === "action.submit") {
      const a = (p.actions || []).find((x) => x.action_id === m.id);
      if (!a) continue;
      const ctx = p.context || {};
      const owner = ctx.owner_id || env.src;
      const text = `${from} asks: ${a.text || a.command || a.type}`;
      const fields = { agent_ids: [owner], kind: "reply", reply_to_action_id: a.action_id };
      if (ctx.context_id) fields.context_id = ctx.context_id;
      const settle = (approve) => async () => {
        await api("POST", `/api/sessions/${state.selected}/actions/${encodeURIComponent(a.action_id)}/result`, {
          from: me, to: owner, status: approve ? "completed" : "rejected", detail: approve ? "approved" : "denied",
          group_id: p.group_id, action_index: a.action_index,
        });
        announce(`${approve ? "Approved" : "Denied"}: ${a.text || a.type}`);
        scheduleInbox();
      };
      item("step", "step", text, m.seq, m.state, [
        ["Answer", () => startReply({ fields, label: text, toYou: true, step: true }), text],
        ["Approve", settle(true), text],
        ["Deny", settle(false), text],
      ]);
    } else if (env.type === "message.send") {
      const answer = answerFor(env, from);
      const text = `${from}: ${describe(env)}`;
      item("message", "message", text, m.seq, m.state, answer ? [["Reply", () => startReply(answer), text]] : []);
    }
  }
  for (const r of stopsForMe()) {
    const p = r.envelope.payload;
    const others = [...new Set([p.from, ...(p.to || [])])].filter((a) => a && a !== me);
    // Only the owner may follow up in a conversation; anyone else resumes with a new one.
    const fields = { agent_ids: others };
    if (p.context_id && p.owner_id === me) fields.context_id = p.context_id;
    const text = `loop stopped (${p.rule}, limit ${p.limit}): ${others.map(name).join(", ")}`;
    const dismiss = () => {
      const key = `weave.dismissed.${state.selected}`;
      const list = JSON.parse(localStorage.getItem(key) || "[]");
      localStorage.setItem(key, JSON.stringify([...list, r.seq]));
      renderInbox();
    };
    item("stop", "stop", text, r.seq, null, [
      ["Resume", () => startReply({ fields, label: `the stopped conversation with ${others.map(name).join(", ")}`, step: false }), text],
      ["Dismiss", dismiss, text],
    ]);
  }
  $("inbox").replaceChildren(...items);
  const total = items.length;
  $("inbox-count").textContent = total ? String(total) : "";
  $("inbox-count").setAttribute("aria-label", `${total} waiting on you`);
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  $("inbox-summary").textContent = total
    ? `${plural(counts.step, "step")} · ${plural(counts.message, "message")} · ${plural(counts.stop, "stop")}`
    : "nothing waits on you";
  $("inbox-box").dataset.steps = counts.step;
  $("inbox-box").dataset.messages = counts.message;
  $("inbox-box").dataset.stops = counts.stop;
}

/// The person's unread count in every session they joined from this browser (polled: a
/// browser holds few connections per host, and the session list stream carries no messages).
let unreadBusy = false;
async function refreshUnread() {
  if (unreadBusy) return;
  unreadBusy = true;
  try {
    const next = new Map();
    for (const s of state.sessions.values()) {
      const me = JSON.parse(localStorage.getItem(`weave.me.${s.id}`) || "null");
      if (!me || s.status === "closed") continue;
      const page = await quietGet(`/api/sessions/${s.id}/agents/${encodeURIComponent(me.id)}/inbox?limit=1`);
      if (page && page.total) next.set(s.id, page.total);
    }
    const changed = next.size !== state.unread.size || [...next].some(([k, v]) => state.unread.get(k) !== v);
    state.unread = next;
    if (changed) renderSessions();
  } finally {
    unreadBusy = false;
  }
}
setInterval(refreshUnread, 3000);

/// `#ann #bob text` → targets and text; names match agents' names or ids, case-insensitively.
function parseAddressed(line) {
  const targets = [];
  let rest = line.trim();
  while (rest.startsWith("#")) {
    const m = rest.match(/^#(\S+)\s*/);
    targets.push(m[1]);
    rest = rest.slice(m[0].length);
  }
  return { targets, text: rest };
}

$("send").onsubmit = async (ev) => {
  ev.preventDefault();
  const { targets, text } = parseAddressed($("send-text").value);
  if (!text) return showError("nothing to send");
  let body;
  if (targets.length) body = { from: state.me.id, text, agent_ids: targets };
  else if (state.replyTo) body = { from: state.me.id, text, ...state.replyTo.fields };
  else return showError("address agents with #name, e.g. `#bob please review`, or use Reply on a message");
  const res = await api("POST", `/api/sessions/${state.selected}/messages`, body);
  if (!targets.length) {
    state.replyTo = null;
    renderReplyTo();
  }
  for (const f of res.failures) showError(`${f.agent_id}: ${f.code}: ${f.message}`);
  $("send-text").value = "";
  $("picker").hidden = true;
};

$("reply-cancel").onclick = () => {
  state.replyTo = null;
  renderReplyTo();
  $("send-text").focus();
};
$("send-text").onkeydown = (ev) => {
  if (ev.key === "Escape" && state.replyTo) {
    state.replyTo = null;
    renderReplyTo();
  } else if (ev.key === "Enter" && !ev.shiftKey) {
    ev.preventDefault();
    $("send").requestSubmit();
  }
};

// The #name picker: typing `#` offers the session's agents.
$("send-text").oninput = () => {
  const value = $("send-text").value;
  const m = value.match(/#(\S*)$/);
  const picker = $("picker");
  if (!m) return (picker.hidden = true);
  const prefix = m[1].toLowerCase();
  const names = [...state.agents.values()]
    .filter((a) => !state.me || a.id !== state.me.id)
    .map((a) => a.name || a.id)
    .filter((n) => n.toLowerCase().startsWith(prefix));
  picker.replaceChildren(
    ...names.map((n) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = `#${n}`;
      b.onclick = () => {
        $("send-text").value = value.slice(0, value.length - m[0].length) + `#${n} `;
        picker.hidden = true;
        $("send-text").focus();
      };
      return b;
    }),
  );
  picker.hidden = names.length === 0;
};

// ---- logged out: say how to get in -----------------------------------------------------------

fetch("/api/sessions", { credentials: "same-origin" })
  .then((resp) => {
    if (resp.status !== 401) return;
    $("logged-out").hidden = false;
    document.querySelector("main").hidden = true;
  })
  .catch(() => {});
