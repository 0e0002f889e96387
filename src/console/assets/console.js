// rollbackd console: a client of rollbackd's JSON API, no framework, no build step.
//
// Security, on purpose:
// - The API token lives in sessionStorage only (this tab, gone when it closes). It is sent
//   in the Authorization header by fetch() below, never in a URL (so never in a server log,
//   the history or a Referer) and never in a cookie. A browser attaches cookies to requests
//   by itself; it never attaches this header by itself, so another site cannot make the
//   operator's browser send an authenticated request: that is the CSRF defence.
// - Everything from the server is put in the page as text (textContent), never as HTML.
// - The server checks the role on every request; a viewer simply gets no buttons here.
//
// Live updates: the current page is fetched again every 2 s while the tab is visible
// (paused while it is hidden). Polling rather than server-sent events because an
// EventSource cannot send an Authorization header, and the token must not travel in a URL
// or a cookie; the API's reads are cheap.
"use strict";

const TOKEN_KEY = "rollbackd.token";
const POLL_MS = 2000;
const OPEN_STATES = ["detected", "awaiting_approval", "rolling_back", "verifying", "monitoring"];
const NEEDS_HUMAN = ["awaiting_approval", "blocked", "escalated", "failed"];
const STOPPABLE = ["detected", "rolling_back", "verifying", "monitoring"];
const ALL_STATES = OPEN_STATES.concat(["resolved", "failed", "escalated", "cancelled", "blocked", "superseded"]);

const session = { token: null, name: null, role: null };
let pollTimer = null;
let renderedRoute = null;
/** The agents whose signal tables are unfolded: a redraw keeps them so. */
const unfolded = new Set();

// ------------------------------------------------------------------ small helpers

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text, never HTML). */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function badgeClass(state) {
  if (["resolved"].includes(state)) return "badge ok";
  if (["awaiting_approval", "blocked", "monitoring", "verifying", "detected"].includes(state)) return "badge warn";
  if (["failed", "escalated", "rolling_back"].includes(state)) return "badge bad";
  return "badge";
}

function stateBadge(state, id) {
  return el("span", { class: badgeClass(state), id: id || null, dataset: { state } }, state.replace(/_/g, " "));
}

function ago(iso) {
  if (!iso) return "–";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return `${d.toLocaleString()} (${ago(iso)})`;
}

function fmtValue(v, unit) {
  if (v === null || v === undefined) return "no data";
  if (unit === "ratio") return `${(v * 100).toFixed(1)} %`;
  if (unit === "seconds") return `${v.toFixed(3)} s`;
  if (unit === "bool") return v ? "yes" : "no";
  return Number.isInteger(v) ? String(v) : v.toFixed(3);
}

function table(headers, rows, opts) {
  const head = el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h))));
  const body = el("tbody", {}, rows);
  return el("div", { class: "table-wrap" }, el("table", opts || {}, head, body));
}

function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.filter(Boolean).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

// ------------------------------------------------------------------ the API

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Calls the API with the session's token; a 401 ends the session. */
async function api(path, options) {
  const opts = options || {};
  const headers = { Accept: "application/json" };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method: opts.method || "GET",
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    credentials: "omit",
    cache: "no-store",
    referrerPolicy: "no-referrer",
  });
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  if (!res.ok) {
    const msg = (data && data.error) || `${res.status} ${res.statusText}`;
    if (res.status === 401 && !opts.signingIn) signOut("Your token was not accepted any more: sign in again.");
    throw new ApiError(res.status, msg);
  }
  return data;
}

// ------------------------------------------------------------------ sign-in

async function signIn(token) {
  session.token = token;
  try {
    const me = await api("/api/v1/whoami", { signingIn: true });
    session.name = me.name;
    session.role = me.role;
    sessionStorage.setItem(TOKEN_KEY, token);
    return null;
  } catch (e) {
    session.token = null;
    if (e.status === 401) return "That token was not accepted (401 Unauthorized). Check it and try again.";
    return `Could not sign in: ${e.message}`;
  }
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  session.token = session.name = session.role = null;
  stopPolling();
  renderedRoute = null;
  showSignIn(message || "");
}

function showSignIn(message) {
  $("view").replaceChildren();
  $("nav").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $("token").value = "";
  $("token").focus();
}

function isOperator() {
  return session.role === "operator";
}

// ------------------------------------------------------------------ routing and polling

function route() {
  const hash = location.hash || "#/agents";
  const m = hash.match(/^#\/incident\/([^/?]+)$/);
  if (m) return { page: "incident", id: decodeURIComponent(m[1]) };
  if (hash.startsWith("#/incidents")) {
    const q = new URLSearchParams(hash.split("?")[1] || "");
    return { page: "incidents", agent: q.get("agent") || "", state: q.get("state") || "" };
  }
  return { page: "agents" };
}

function startPolling() {
  stopPolling();
  if (document.hidden || !session.token) return;
  pollTimer = setInterval(() => refresh(false), POLL_MS);
}

function stopPolling() {
  if (pollTimer) clearInterval(pollTimer);
  pollTimer = null;
}

/** Draws the current page; `fresh` rebuilds it, otherwise only its data is redrawn. */
async function refresh(fresh) {
  if (!session.token) return;
  if ($("confirm").open) return; // never move what the operator is reading in a dialog
  const r = route();
  const key = JSON.stringify(r);
  if (fresh || key !== renderedRoute) {
    renderedRoute = key;
    for (const a of document.querySelectorAll("#nav a")) a.classList.remove("current");
    const nav = $(r.page === "agents" ? "nav-agents" : "nav-incidents");
    if (nav) nav.classList.add("current");
  }
  try {
    let view;
    if (r.page === "incident") view = await incidentPage(r.id);
    else if (r.page === "incidents") view = await incidentsPage(r);
    else view = await agentsPage();
    if (JSON.stringify(route()) !== key || $("confirm").open) return; // the operator moved on
    const y = window.scrollY;
    $("view").replaceChildren(view);
    document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
    window.scrollTo(0, y);
    setStatus(`Updated ${new Date().toLocaleTimeString()} · refreshes every ${POLL_MS / 1000} s`, false);
  } catch (e) {
    if (!session.token) return;
    setStatus(`Could not reach rollbackd (${e.message}); retrying every ${POLL_MS / 1000} s`, true);
  }
}

function setStatus(text, stale) {
  const s = $("status-line");
  s.textContent = text;
  s.className = stale ? "stale" : "";
}

// ------------------------------------------------------------------ agents page

function attentionOf(agent, openIncidents) {
  const why = [];
  for (const inc of openIncidents) why.push(`${inc.id} is ${inc.state.replace(/_/g, " ")}`);
  const d = agent.status && agent.status.decision;
  if (d && d.decision && d.decision !== "none" && openIncidents.length === 0) {
    why.push(`decision: ${d.decision.replace(/_/g, " ")}${d.row ? ` (row ${d.row})` : ""}`);
  }
  if (agent.paused) why.push(`automation paused by ${agent.paused.paused_by}`);
  return why;
}

async function agentsPage() {
  const [agents, rollbacks] = await Promise.all([
    api("/api/v1/agents"),
    api("/api/v1/rollbacks?limit=200"),
  ]);
  const incidents = rollbacks.rollbacks || [];
  const rows = agents.agents.map((a) => {
    const mine = incidents.filter((i) => i.agent === a.id);
    const open = mine.filter((i) => OPEN_STATES.includes(i.state) || (NEEDS_HUMAN.includes(i.state) && i === mine[0]));
    return { agent: a, open, latest: mine[0], why: attentionOf(a, open) };
  });
  rows.sort((x, y) => (y.why.length > 0) - (x.why.length > 0) || x.agent.id.localeCompare(y.agent.id));
  const needing = rows.filter((r) => r.why.length > 0).length;
  const page = el("div", {},
    el("div", { class: "section-title" }, el("h1", {}, "Agents"),
      el("span", { class: "count" }, `${rows.length} agents, ${needing} need attention`)),
    agents.global_pause ? el("p", { class: "why" }, `All automation is paused by ${agents.global_pause.paused_by}: ${agents.global_pause.reason}`) : null,
    el("div", { class: "grid" }, rows.map(agentCard)));
  return page;
}

function agentCard({ agent, open, latest, why }) {
  const s = agent.status || {};
  const w = agent.workload;
  const windowText = s.window_open
    ? el("span", {}, el("span", { class: "badge info" }, "window open"), ` until ${s.window_ends_at ? new Date(s.window_ends_at).toLocaleTimeString() : "–"}`)
    : el("span", { class: "badge" }, "window closed");
  const decision = s.decision ? `${s.decision.decision.replace(/_/g, " ")}${s.decision.row ? ` · row ${s.decision.row}` : ""}` : "–";
  const card = el("article", { class: why.length ? "card attention" : "card", dataset: { agent: agent.id } },
    el("div", { class: "card-head" },
      el("h2", {}, agent.id), el("span", { class: "name" }, agent.name),
      why.length ? el("span", { class: "badge warn attention-badge" }, "needs attention") : null,
      agent.paused ? el("span", { class: "badge bad" }, "paused") : null),
    why.map((t) => el("p", { class: "why" }, t)),
    open.map((i) => el("p", {}, el("a", { href: `#/incident/${encodeURIComponent(i.id)}`, dataset: { incident: i.id } }, `Open incident ${i.id}`), " ", stateBadge(i.state))),
    facts([
      ["Workload", w ? `${w.kind} ${w.namespace}/${w.name}` : "–"],
      ["Window", windowText],
      ["Deployed", s.deployed_at ? `${ago(s.deployed_at)}` : "–"],
      ["Revision", s.revision != null ? `${s.revision}${s.image ? ` · ${s.image}` : ""}` : "–"],
      ["Decision", decision],
      ["Automation", agent.paused ? `paused by ${agent.paused.paused_by}: ${agent.paused.reason}` : "active"],
      latest && open.includes(latest) ? null
        : ["Last incident", latest ? el("span", {}, el("a", { href: `#/incident/${encodeURIComponent(latest.id)}` }, latest.id), " ", stateBadge(latest.state)) : "none"],
    ]),
    signalsTable(agent.id, agent.signals || []));
  if (isOperator()) {
    card.append(el("div", { class: "actions" },
      agent.paused
        ? el("button", { type: "button", dataset: { action: "resume" }, onclick: () => confirmResume(agent) }, "Resume")
        : el("button", { type: "button", dataset: { action: "pause" }, onclick: () => confirmPause(agent) }, "Pause"),
      el("button", { type: "button", class: "danger", dataset: { action: "trigger" }, onclick: () => confirmTrigger(agent) }, "Roll back…")));
  }
  return card;
}

function signalsTable(agentId, signals) {
  const withData = signals.filter((s) => s.value !== null || s.rows.some((r) => r.meets));
  if (signals.length === 0) return null;
  const rows = (withData.length ? withData : signals).flatMap((s) => s.rows.map((r, i) =>
    el("tr", { class: r.meets ? "meets" : "" },
      el("td", {}, i === 0 ? s.name : ""),
      el("td", { class: "num" }, i === 0 ? fmtValue(s.value, s.unit) : ""),
      el("td", {}, el("span", { class: "mono nowrap" }, r.row), el("div", { class: "muted small" }, r.severity)),
      el("td", { class: "mono" }, r.threshold),
      el("td", {}, r.meets === true ? "meets" : r.meets === false ? "–" : "?"))));
  const details = el("details", { class: "signals", open: unfolded.has(agentId) },
    el("summary", {}, `Signals against the rows' thresholds (${withData.length} with data)`),
    table(["Signal", "Latest", "Row", "Threshold", "Meets"], rows));
  details.addEventListener("toggle", () => {
    if (details.open) unfolded.add(agentId);
    else unfolded.delete(agentId);
  });
  return details;
}

// ------------------------------------------------------------------ incidents page

async function incidentsPage(r) {
  const q = new URLSearchParams({ limit: "200" });
  if (r.agent) q.set("agent", r.agent);
  if (r.state) q.set("state", r.state);
  const [data, agents] = await Promise.all([api(`/api/v1/rollbacks?${q}`), api("/api/v1/agents")]);
  const list = data.rollbacks || [];
  const go = () => {
    const p = new URLSearchParams();
    if ($("filter-agent").value) p.set("agent", $("filter-agent").value);
    if ($("filter-state").value) p.set("state", $("filter-state").value);
    location.hash = `#/incidents${p.toString() ? `?${p}` : ""}`;
  };
  const agentSelect = el("select", { id: "filter-agent", onchange: go },
    el("option", { value: "" }, "all agents"),
    agents.agents.map((a) => el("option", { value: a.id, selected: a.id === r.agent }, a.id)));
  const stateSelect = el("select", { id: "filter-state", onchange: go },
    el("option", { value: "" }, "all states"),
    ALL_STATES.map((s) => el("option", { value: s, selected: s === r.state }, s.replace(/_/g, " "))));
  const rows = list.map((i) => el("tr", { class: "link", dataset: { incident: i.id }, onclick: () => { location.hash = `#/incident/${encodeURIComponent(i.id)}`; } },
    el("td", { class: "nowrap" }, el("a", { href: `#/incident/${encodeURIComponent(i.id)}` }, i.id)),
    el("td", { class: "nowrap" }, i.agent),
    el("td", {}, stateBadge(i.state)),
    el("td", {}, i.severity || "–"),
    el("td", {}, i.reason),
    el("td", { class: "num" }, ago(i.updated_at))));
  return el("div", {},
    el("div", { class: "section-title" }, el("h1", {}, "Incidents"), el("span", { class: "count" }, `${list.length} shown, newest first`)),
    el("div", { class: "card" },
      el("div", { class: "filters" },
        el("div", {}, el("label", { for: "filter-agent" }, "Agent"), agentSelect),
        el("div", {}, el("label", { for: "filter-state" }, "State"), stateSelect)),
      list.length ? table(["Incident", "Agent", "State", "Severity", "Why", "Changed"], rows)
        : el("p", { class: "muted" }, "No incident matches.")));
}

// ------------------------------------------------------------------ one incident

async function incidentPage(id) {
  const d = await api(`/api/v1/rollbacks/${encodeURIComponent(id)}`);
  const inc = d.incident;
  const ev = (d.evidence && d.evidence.evidence) || {};
  const head = el("div", { class: "card" },
    el("div", { class: "card-head" }, el("h1", {}, `Incident ${inc.id}`), stateBadge(inc.state, "incident-state")),
    el("p", {}, inc.reason),
    facts([
      ["Agent", inc.agent],
      ["Workload", `${inc.namespace}/${inc.workload}`],
      ["Revision", inc.revision != null ? `${inc.revision}${inc.from_image ? ` · ${inc.from_image}` : ""}` : "–"],
      ["Severity / row", `${inc.severity || "–"} · ${inc.row || "–"}`],
      ["Method", inc.method || "–"],
      ["Trigger", `${inc.trigger}${inc.requested_by ? ` by ${inc.requested_by}` : ""}${inc.dry_run ? " (dry run)" : ""}`],
      ["Opened", when(inc.created_at)],
      ["Changed", when(inc.updated_at)],
      ["Latest", latestEvent(d.timeline)],
    ]),
    isOperator() ? incidentActions(inc, d.plan) : null);
  return el("div", {},
    el("p", {}, el("a", { href: "#/incidents" }, "← all incidents")),
    head,
    el("div", { class: "card" }, el("h2", {}, "Decision"), decisionSection(d.evidence, ev)),
    d.plan ? el("div", { class: "card" }, el("h2", {}, `Method ${d.plan.name}: what a rollback runs`),
      el("ol", {}, d.plan.steps.map((s) => el("li", {}, `${s.name}: ${s.text}`)))) : null,
    el("div", { class: "card" }, el("h2", {}, "Timeline"), table(["When", "Event", "From → to", "Note"],
      (d.timeline || []).map((t) => el("tr", {}, el("td", { class: "num" }, new Date(t.at).toLocaleTimeString()), el("td", {}, t.event),
        el("td", {}, `${t.from ? t.from.replace(/_/g, " ") : "–"} → `, stateBadge(t.to)), el("td", {}, t.note))))),
    el("div", { class: "card" }, el("h2", {}, "Steps"), (d.steps || []).length ? table(["#", "Step", "Workload", "Outcome", "Finished", "Detail"],
      d.steps.map((s) => el("tr", {}, el("td", { class: "num" }, s.index + 1), el("td", {}, `${s.name} (${s.kind})`), el("td", {}, s.workload),
        el("td", {}, el("span", { class: s.state === "done" ? "badge ok" : s.state === "failed" ? "badge bad" : "badge" }, s.state)),
        el("td", { class: "num" }, s.finished_at ? new Date(s.finished_at).toLocaleTimeString() : "–"),
        el("td", { class: "mono" }, detailText(s.detail))))) : el("p", { class: "muted" }, "No step has run.")),
    el("div", { class: "card" }, el("h2", {}, "Notifications"), (d.notifications || []).length ? table(["Target", "Stage", "State", "Attempts", "Sent", "Last error"],
      d.notifications.map((n) => el("tr", {}, el("td", {}, n.target), el("td", {}, n.stage || "–"), el("td", {}, n.state), el("td", { class: "num" }, n.attempts),
        el("td", { class: "num" }, n.sent_at ? new Date(n.sent_at).toLocaleTimeString() : "–"), el("td", {}, n.last_error || "")))) : el("p", { class: "muted" }, "None.")),
    el("div", { class: "card" }, el("h2", {}, "Audit"), (d.audit || []).length ? table(["When", "Who", "Action", "Reason"],
      d.audit.map((a) => el("tr", {}, el("td", { class: "num" }, new Date(a.at).toLocaleTimeString()), el("td", {}, a.actor), el("td", {}, a.action), el("td", {}, a.reason)))) : el("p", { class: "muted" }, "No human action yet.")));
}

function latestEvent(timeline) {
  const t = (timeline || [])[timeline.length - 1];
  return t ? `${t.event} → ${t.to.replace(/_/g, " ")}: ${t.note}` : "–";
}

function detailText(detail) {
  if (!detail || (typeof detail === "object" && Object.keys(detail).length === 0)) return "";
  // a step's own words when it has them, not its bookkeeping
  const own = typeof detail === "object" && detail.detail !== undefined ? detail.detail : detail;
  const t = typeof own === "string" ? own : JSON.stringify(own);
  return t.length > 160 ? `${t.slice(0, 160)}…` : t;
}

function decisionSection(decision, ev) {
  if (!decision) return el("p", { class: "muted" }, "No decision recorded.");
  const conds = ev.conditions || [];
  const guards = ev.guards || [];
  return el("div", {},
    el("p", {}, decision.reason || ""),
    facts([
      ["Decision", (decision.decision || "–").replace(/_/g, " ")],
      ["Deploy age", ev.deploy_age || "–"],
      ["Deadline", decision.deadline || "–"],
      ["Blocked by", ev.blocked_by || "–"],
    ]),
    conds.length ? table(["Signal", "Value", "Baseline", "Threshold", "Held", "Holds"],
      conds.map((c) => el("tr", { class: c.truth === "true" ? "meets" : "" },
        el("td", {}, c.signal), el("td", { class: "num" }, c.value === null || c.value === undefined ? "no data" : String(+c.value.toFixed(4))),
        el("td", { class: "num" }, c.baseline != null ? String(+c.baseline.toFixed(4)) : "–"),
        el("td", { class: "mono" }, c.threshold),
        el("td", {}, c.held_for ? `${c.held_for}${c.required_for ? ` of ${c.required_for}` : ""}` : (c.required_for ? `needs ${c.required_for}` : "–")),
        el("td", {}, String(c.truth))))) : null,
    guards.length ? el("div", {}, el("h3", {}, "Guards (runbook's \"do not roll back if\")"), table(["Guard", "Blocks", "Rule", "Conditions"],
      guards.map((g) => el("tr", { class: g.blocks ? "meets" : "" }, el("td", {}, g.guard || "–"), el("td", {}, g.blocks ? "yes" : "no"),
        el("td", {}, g.description || ""),
        el("td", { class: "mono" }, (g.conditions || []).map((c) => `${c.signal} ${c.threshold}: ${c.value === null || c.value === undefined ? "no data" : c.value}`).join("; ")))))) : null);
}

function incidentActions(inc, plan) {
  const buttons = [];
  if (["awaiting_approval", "blocked"].includes(inc.state)) {
    buttons.push(el("button", { type: "button", class: "primary", dataset: { action: "approve" }, onclick: () => confirmApprove(inc, plan) }, "Approve rollback"));
  }
  if (inc.state === "awaiting_approval") {
    buttons.push(el("button", { type: "button", dataset: { action: "reject" }, onclick: () => confirmReject(inc) }, "Reject"));
  }
  if (STOPPABLE.includes(inc.state)) {
    buttons.push(el("button", { type: "button", class: "danger", dataset: { action: "cancel" }, onclick: () => confirmCancel(inc) }, "Cancel"));
  }
  if (OPEN_STATES.includes(inc.state) || inc.state === "blocked") {
    buttons.push(el("button", { type: "button", dataset: { action: "pause" }, onclick: () => confirmPause({ id: inc.agent }) }, `Pause ${inc.agent}`));
  }
  return buttons.length ? el("div", { class: "actions" }, buttons) : null;
}

// ------------------------------------------------------------------ confirmations

function planList(plan) {
  if (!plan || !plan.steps.length) return null;
  return el("ol", {}, plan.steps.map((s) => el("li", {}, s.text)));
}

/**
 * Opens the confirmation dialog: `lines` say exactly what will happen; `run(reason)` does
 * it. The dialog stays open with the server's answer when the server refuses.
 */
function confirmAction(title, lines, verb, danger, run) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").replaceChildren(...lines.filter(Boolean).map((l) => (typeof l === "string" ? el("p", {}, l) : l)));
  $("confirm-reason").value = "";
  $("confirm-error").textContent = "";
  const yes = $("confirm-yes");
  yes.textContent = verb;
  yes.className = danger ? "danger" : "primary";
  yes.disabled = false;
  dialog.onsubmit = async (e) => {
    e.preventDefault();
    const reason = $("confirm-reason").value.trim();
    if (!reason) {
      $("confirm-error").textContent = "Say why: the reason goes into the audit trail.";
      return;
    }
    yes.disabled = true;
    try {
      await run(reason);
      dialog.close();
      await refresh(true);
    } catch (err) {
      $("confirm-error").textContent = `Refused: ${err.message}`;
      yes.disabled = false;
    }
  };
  dialog.showModal();
  $("confirm-reason").focus();
}

function confirmApprove(inc, plan) {
  const steps = plan ? plan.steps.length : 0;
  confirmAction(
    `Approve the rollback of ${inc.agent}?`,
    [
      `Incident ${inc.id} (${inc.severity || "no severity"}, row ${inc.row || "–"}) is ${inc.state.replace(/_/g, " ")}.`,
      `rollbackd will roll back ${inc.namespace}/${inc.workload}${inc.revision != null ? ` from revision ${inc.revision}` : ""} with method ${inc.method || "–"}, ${steps} step${steps === 1 ? "" : "s"}:`,
      planList(plan),
      "It then verifies the recovery. Guards marked \"always\" are checked again first and can still refuse.",
    ],
    "Approve and roll back", true,
    (reason) => api(`/api/v1/rollbacks/${encodeURIComponent(inc.id)}/approve`, { method: "POST", body: { reason } }));
}

function confirmReject(inc) {
  confirmAction(
    `Reject the rollback of ${inc.agent}?`,
    [
      `Incident ${inc.id} is cancelled: nothing is rolled back, ${inc.namespace}/${inc.workload}${inc.revision != null ? ` revision ${inc.revision}` : ""} keeps running.`,
      "rollbackd may open a new incident if the signals still call for one.",
    ],
    "Reject: do not roll back", false,
    (reason) => api(`/api/v1/rollbacks/${encodeURIComponent(inc.id)}/cancel`, { method: "POST", body: { reason: `rejected: ${reason}` } }));
}

function confirmCancel(inc) {
  confirmAction(
    `Cancel incident ${inc.id}?`,
    [
      `The incident is ${inc.state.replace(/_/g, " ")}. rollbackd stops it at the next step boundary and runs no further step.`,
      "Steps already done are not undone: the workload stays as they left it.",
    ],
    "Cancel the incident", true,
    (reason) => api(`/api/v1/rollbacks/${encodeURIComponent(inc.id)}/cancel`, { method: "POST", body: { reason } }));
}

function confirmPause(agent) {
  confirmAction(
    `Pause automation for ${agent.id}?`,
    [
      `rollbackd keeps watching ${agent.id} but opens no rollback, runs no step and accepts no approval for it until someone resumes it.`,
    ],
    `Pause ${agent.id}`, false,
    (reason) => api(`/api/v1/agents/${encodeURIComponent(agent.id)}/pause`, { method: "POST", body: { reason } }));
}

function confirmResume(agent) {
  confirmAction(
    `Resume automation for ${agent.id}?`,
    [`rollbackd acts on ${agent.id}'s decisions again, unattended where its policy says so.`],
    `Resume ${agent.id}`, false,
    (reason) => api(`/api/v1/agents/${encodeURIComponent(agent.id)}/resume`, { method: "POST", body: { reason } }));
}

function confirmTrigger(agent) {
  const plan = agent.manual_plan;
  const s = agent.status || {};
  const w = agent.workload;
  confirmAction(
    `Roll back ${agent.id} now, by hand?`,
    [
      `rollbackd opens an incident for ${w ? `${w.namespace}/${w.name}` : agent.id}${s.revision != null ? ` (revision ${s.revision})` : ""} and runs method ${plan ? plan.name : "(the policy's default)"} at once${plan ? `, ${plan.steps.length} steps:` : "."}`,
      planList(plan),
      "A guard marked \"always\" (e.g. a life-safety rule) still refuses it.",
    ],
    `Roll back ${agent.id}`, true,
    (reason) => api("/api/v1/rollbacks", { method: "POST", body: { agent: agent.id, reason } }));
}

// ------------------------------------------------------------------ start

async function start() {
  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = $("signin-button");
    button.disabled = true;
    $("signin-error").textContent = "";
    const error = await signIn($("token").value.trim());
    button.disabled = false;
    if (error) {
      $("signin-error").textContent = error;
      return;
    }
    $("token").value = "";
    enter();
  });
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  $("confirm-no").addEventListener("click", () => $("confirm").close());
  $("confirm").addEventListener("close", () => refresh(false));
  window.addEventListener("hashchange", () => refresh(true));
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) stopPolling();
    else if (session.token) { refresh(false); startPolling(); }
  });
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved && !(await signIn(saved))) enter();
  else showSignIn("");
}

function enter() {
  $("signin").hidden = true;
  $("nav").hidden = false;
  $("sign-out").hidden = false;
  $("who").textContent = `${session.name} · ${session.role}${isOperator() ? "" : " (read only)"}`;
  $("who").dataset.role = session.role;
  refresh(true);
  startPolling();
}

document.addEventListener("DOMContentLoaded", start);
