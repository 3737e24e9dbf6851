// The ops dashboard of the local cluster (chorus/cluster/ops.py serves it): every region's
// health, links, outboxes, archive lag, connections and the busiest streams, refreshed every
// second; link and drill controls with a moderator's or host's token. Text from the server
// goes in as text (dom.ts).

import { byId, el, takeToken } from "./dom.js";

interface Gateway { url: string; healthy: boolean; connections: number | null }
interface RegionDoc {
  name: string; healthy: boolean; nats: boolean; leaf_link: boolean; redis: boolean;
  cassandra: boolean | null; url: string; connections: number; archive_lag: number | null;
  link: { enabled: boolean | null; latency_ms: number | null; configured_ms: number; rtt_ms: number | null };
  gateways: Gateway[]; outbox: Record<string, number | null>;
}
interface StreamDoc { stream: string; comments_per_s: number; comments: number;
  viewers: Record<string, number | null>; total_viewers: number }
interface Status {
  at_ms: number | null; healthy: boolean; hub: boolean; toxiproxy: boolean; refresh_s: number;
  regions: RegionDoc[]; streams: StreamDoc[]; outbox_alert: number; drills: string[];
  drill: { drill: string; region: string; seconds: number; state: string; report: string;
    progress?: string[] } | null;
}

const TOKEN_KEY = "chorus-ops-token";
let token = takeToken(TOKEN_KEY);

function mark(ok: boolean | null | undefined, up = "ok", down = "DOWN"): HTMLSpanElement {
  if (ok === null || ok === undefined) return el("span", { class: "muted", text: "–" });
  return el("span", { class: ok ? "ok" : "bad", text: ok ? up : down });
}

function ms(value: number | null): string {
  return value === null ? "?" : value < 10 ? value.toFixed(1) : String(Math.round(value));
}

async function control(path: string, body: Record<string, unknown>): Promise<void> {
  const error = byId("control-error");
  error.textContent = "";
  if (!token) {
    error.textContent = "Controls need a moderator's or host's token (below).";
    byId<HTMLInputElement>("token").focus();
    return;
  }
  const resp = await fetch(path, { method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` } });
  if (!resp.ok) {
    const doc = await resp.json().catch(() => ({})) as { error?: { message?: string } };
    error.textContent = `${resp.status}: ${doc.error?.message ?? resp.statusText}`;
    return;
  }
  await refresh();
}

function linkControls(region: RegionDoc): HTMLElement {
  const cut = el("button", { class: "control", text: region.link.enabled === false ? "Restore" : "Cut",
    attrs: { type: "button", "data-action": region.link.enabled === false ? "restore" : "cut",
      "aria-label": `${region.link.enabled === false ? "Restore" : "Cut"} ${region.name}'s link` } });
  cut.addEventListener("click", () => void control(`/api/links/${encodeURIComponent(region.name)}`,
    { action: cut.dataset["action"] }));
  const latency = el("input", { attrs: { type: "number", min: "0", max: "5000", step: "10",
    value: String(region.link.latency_ms ?? region.link.configured_ms),
    "aria-label": `${region.name}'s one-way latency in ms` } });
  const slow = el("button", { class: "control", text: "Set ms", attrs: { type: "button",
    "data-action": "slow", "aria-label": `Set ${region.name}'s link latency` } });
  slow.addEventListener("click", () => void control(`/api/links/${encodeURIComponent(region.name)}`,
    { action: "slow", latency_ms: Number(latency.value) }));
  return el("div", { class: "controls" }, cut, latency, slow);
}

function regionRow(region: RegionDoc, alert: number): HTMLTableRowElement {
  const link = region.link;
  const linkState = link.enabled === false ? el("span", { class: "bad", text: "CUT" })
    : link.enabled === null ? el("span", { class: "muted", text: "?" })
      : region.leaf_link ? el("span", { class: "ok", text: "up" }) : el("span", { class: "warn", text: "reconnecting" });
  const outbox = Object.entries(region.outbox).map(([dest, n]) =>
    el("span", { class: `gw ${n === null ? "muted" : n > alert ? "bad" : n > 0 ? "warn" : ""}`,
      text: `${dest} ${n === null ? "?" : n}` }));
  const row = el("tr", { attrs: { "data-region": region.name, "data-link": link.enabled === false ? "cut" : "up",
    "data-healthy": String(region.healthy) } },
  el("th", { attrs: { scope: "row" } }, el("a", { text: region.name, attrs: { href: `${region.url}/watch/demo` } })),
  el("td", {}, mark(region.healthy, "healthy", "UNHEALTHY")),
  el("td", {}, mark(region.nats)),
  el("td", {}, mark(region.redis)),
  el("td", {}, mark(region.cassandra)),
  el("td", { class: "link" }, linkState),
  el("td", { text: `${link.latency_ms ?? "?"} ms / ${ms(link.rtt_ms)} ms` }),
  el("td", {}, ...region.gateways.map((g) => el("span", { class: `gw ${g.healthy ? "" : "bad"}`,
    text: `${g.url.replace(/^https?:\/\//, "")} (${g.connections ?? "?"})` }))),
  el("td", {}, ...outbox),
  el("td", { text: region.archive_lag === null ? "–" : String(region.archive_lag) }),
  el("td", {}, linkControls(region)));
  return row;
}

function streamRow(stream: StreamDoc): HTMLTableRowElement {
  const per = Object.entries(stream.viewers).map(([region, n]) => `${region} ${n ?? "?"}`).join(" · ");
  return el("tr", { attrs: { "data-stream": stream.stream } },
    el("th", { attrs: { scope: "row" }, text: stream.stream }),
    el("td", { text: stream.comments_per_s.toFixed(1) }),
    el("td", { text: String(stream.comments) }),
    el("td", { text: String(stream.total_viewers) }),
    el("td", { class: "muted", text: per }));
}

let drillFormReady = false;

function render(status: Status): void {
  const summary = byId("summary");
  summary.dataset["healthy"] = String(status.healthy);
  const at = status.at_ms === null ? "" : ` · ${new Date(status.at_ms).toLocaleTimeString()}`;
  summary.textContent = `${status.healthy ? "healthy" : "UNHEALTHY"} · hub ${status.hub ? "ok" : "DOWN"}`
    + ` · toxiproxy ${status.toxiproxy ? "ok" : "DOWN"}${at}`;
  const focused = document.activeElement;
  const keepFocus = focused instanceof HTMLInputElement && focused.closest("#regions") !== null;
  if (!keepFocus) {
    byId("regions").querySelector("tbody")?.replaceChildren(...status.regions.map((r) => regionRow(r, status.outbox_alert)));
  }
  byId("streams").querySelector("tbody")?.replaceChildren(...status.streams.map(streamRow));
  byId("no-streams").hidden = status.streams.length > 0;
  if (!drillFormReady && status.regions.length) {
    byId("drill-name").replaceChildren(...status.drills.map((d) => el("option", { text: d, attrs: { value: d } })));
    byId("drill-region").replaceChildren(...status.regions.map((r) => el("option", { text: r.name, attrs: { value: r.name } })));
    drillFormReady = true;
  }
  const drill = status.drill;
  byId("drill-report").textContent = drill === null ? "No drill has run."
    : drill.state === "running"
      ? [`${drill.drill} on ${drill.region} for ${drill.seconds} s: running…`, ...(drill.progress ?? [])].join("\n")
      : drill.report;
}

async function refresh(): Promise<void> {
  try {
    const resp = await fetch("/api/status", { cache: "no-store" });
    if (resp.ok) render(await resp.json() as Status);
  } catch {
    const summary = byId("summary");
    summary.dataset["healthy"] = "false";
    summary.textContent = "the dashboard's server is not answering (is chorus up running?)";
  }
}

function main(): void {
  const input = byId<HTMLInputElement>("token");
  const state = byId("token-state");
  const showToken = (): void => { state.textContent = token ? "token set" : "no token: controls are off"; };
  showToken();
  byId("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = input.value.trim() || null;
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
    input.value = "";
    showToken();
  });
  byId("drill-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void control("/api/drills", { drill: byId<HTMLSelectElement>("drill-name").value,
      region: byId<HTMLSelectElement>("drill-region").value,
      seconds: Number(byId<HTMLInputElement>("drill-seconds").value) });
  });
  void refresh();
  setInterval(() => void refresh(), 1000);
}

main();
