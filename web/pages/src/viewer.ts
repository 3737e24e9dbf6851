// The viewer page: one stream's comments as they arrive, a post box with replies, the region
// it is connected to with the round trip to its gateway, and its reconnects and failovers.
// Everything comes through the browser SDK (web/sdk); frames the SDK does not decode
// (reactions, tiers, retractions, pins, as the server grows them) are shown when they come
// and never waited for.

import { ChorusClient, type Comment, type Other } from "chorus-client";

import { byId, clock, el, takeToken } from "./dom.js";

const PAGE_LIMIT = 500; // comments kept on the page; older ones fall off
const EVENTS_SHOWN = 4; // connection events listed under the header
const STREAM_ID = /^[A-Za-z0-9_-]{1,64}$/;

function streamOfPage(): string {
  const fromPath = /^\/watch\/([^/]+)$/.exec(location.pathname)?.[1];
  const stream = fromPath ? decodeURIComponent(fromPath) : new URLSearchParams(location.search).get("stream") ?? "demo";
  return STREAM_ID.test(stream) ? stream : "demo";
}

class ViewerPage {
  private readonly list = byId<HTMLOListElement>("comments");
  private readonly text = byId<HTMLTextAreaElement>("text");
  private readonly send = byId<HTMLButtonElement>("send");
  private replyTo: Comment | null = null;
  private failovers = 0;
  private reconnects = 0;

  constructor(private readonly client: ChorusClient) {}

  start(): void {
    const c = this.client;
    c.on("comment", (comment) => this.show(comment));
    c.on("connected", (conn) => {
      const status = byId("status");
      status.dataset["state"] = "live";
      status.dataset["region"] = conn.region;
      status.dataset["transport"] = conn.transport;
      byId("region").textContent = conn.region;
      byId("transport").textContent = `${conn.transport} · ${conn.gateway}`;
      this.text.disabled = false;
      this.send.disabled = false;
      this.event(`connected to ${conn.region} over ${conn.transport}`, "ok");
    });
    c.on("reconnect", (attempt, reason) => {
      this.reconnects += 1;
      const status = byId("status");
      status.dataset["state"] = "reconnecting";
      status.dataset["reconnects"] = String(this.reconnects);
      byId("region").textContent = `${c.region ?? "?"}: reconnecting (attempt ${attempt})`;
      this.event(`connection lost: ${reason}; reconnecting`, "warn");
    });
    c.on("failover", (from, to) => {
      this.failovers += 1;
      byId("status").dataset["failovers"] = String(this.failovers);
      this.event(`${from} is not answering: failing over to ${to}`, "bad");
    });
    c.on("latency", (ms) => {
      byId("latency").textContent = `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
      byId("status").dataset["latency"] = String(ms);
    });
    c.on("viewers", (count) => {
      const node = byId("viewers");
      node.hidden = false;
      node.textContent = `${count} watching in ${c.region ?? "this region"}`;
    });
    c.on("gap", (gap) => {
      this.list.append(el("li", { class: "gap", attrs: { role: "note" },
        text: `Some comments after ${gap.afterId} may be missing.` }));
    });
    c.on("other", (frame) => this.other(frame));
    c.on("error", (err) => this.event(err.message, "bad"));
    this.bindForm();
  }

  // -- comments ------------------------------------------------------------------------------

  private show(comment: Comment): void {
    const at = this.client.timeline.indexOf(comment.id);
    if (at < 0) return; // too old for the page
    const item = this.render(comment);
    const next = this.client.timeline.comments[at + 1];
    const nextNode = next === undefined ? null : document.getElementById(nodeId(next.id));
    const stick = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    this.list.insertBefore(item, nextNode);
    while (this.list.querySelectorAll("li[data-id]").length > this.client.timeline.comments.length) {
      this.list.querySelector("li[data-id]")?.remove();
    }
    byId("empty").hidden = true;
    if (stick) this.list.scrollTop = this.list.scrollHeight;
  }

  private render(comment: Comment): HTMLLIElement {
    const parent = comment.reply_to === null ? null
      : this.client.timeline.comments[this.client.timeline.indexOf(comment.reply_to)] ?? null;
    const replyButton = el("button", { class: "reply", text: "Reply",
      attrs: { type: "button", "aria-label": `Reply to ${comment.name}` } });
    replyButton.addEventListener("click", () => this.startReply(comment));
    const item = el("li", { class: `comment${comment.badge ? ` badge-${comment.badge}` : ""}`,
      attrs: { id: nodeId(comment.id), "data-id": comment.id, "data-region": comment.region } },
    comment.reply_to === null ? null : el("p", { class: "in-reply",
      text: parent === null ? "↪ in reply to an earlier comment"
        : `↪ ${parent.name}: ${parent.text.slice(0, 80)}` }),
    el("p", { class: "meta" },
      el("span", { class: "name", text: comment.name }),
      comment.badge ? el("span", { class: "badge", text: comment.badge }) : null,
      el("span", { class: "origin", text: comment.region, attrs: { title: "posted in" } }),
      el("time", { text: clock(comment.ts), attrs: { datetime: new Date(comment.ts).toISOString() } }),
      replyButton),
    el("p", { class: "text", text: comment.text }));
    return item;
  }

  private startReply(comment: Comment): void {
    this.replyTo = comment;
    byId("replying").hidden = false;
    byId("replying-to").textContent = `Replying to ${comment.name}: ${comment.text.slice(0, 60)}`;
    this.text.focus();
  }

  private cancelReply(): void {
    this.replyTo = null;
    byId("replying").hidden = true;
  }

  private bindForm(): void {
    const form = byId<HTMLFormElement>("post");
    const error = byId("post-error");
    byId("cancel-reply").addEventListener("click", () => {
      this.cancelReply();
      this.text.focus();
    });
    this.text.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        form.requestSubmit();
      } else if (ev.key === "Escape" && this.replyTo !== null) {
        this.cancelReply();
      }
    });
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const text = this.text.value;
      if (!text.trim()) return;
      const replyTo = this.replyTo?.id ?? null;
      this.send.disabled = true;
      error.textContent = "";
      this.client.post(text, { replyTo }).then(() => {
        this.text.value = "";
        this.cancelReply();
      }, (err: Error) => {
        error.textContent = err.message;
      }).finally(() => {
        this.send.disabled = false;
        this.text.focus();
      });
    });
  }

  // -- frames of later versions -----------------------------------------------------------------

  private other(frame: Other): void {
    const doc = frame.doc;
    switch (frame.name) {
      case "reactions": {
        const counts = (doc["totals"] ?? doc["counts"]) as unknown;
        if (typeof counts !== "object" || counts === null) return;
        const box = byId("reactions");
        box.hidden = false;
        box.replaceChildren(...Object.entries(counts as Record<string, unknown>)
          .filter(([, n]) => typeof n === "number")
          .map(([kind, n]) => el("span", { class: "reaction", text: `${kind} ${String(n)}` })));
        return;
      }
      case "tier": {
        const node = byId("tier");
        node.hidden = false;
        const showing = doc["showing"];
        const of = doc["of"] ?? doc["total"];
        node.textContent = typeof showing === "number" && typeof of === "number"
          ? `showing ${showing} of ${of}` : `tier: ${String(doc["tier"] ?? "?")}`;
        return;
      }
      case "retract": {
        // {stream, ids}: the client took them out of its timeline; the page does too.
        const ids = Array.isArray(doc["ids"]) ? doc["ids"] as unknown[] : [];
        for (const id of ids) {
          if (typeof id === "string") document.getElementById(nodeId(id))?.remove();
        }
        return;
      }
      case "restore":
        return; // the client put the comment back in its timeline: it came as a comment
      case "pin": {
        const comment = doc["comment"] as Record<string, unknown> | undefined;
        const pin = byId("pin");
        if (comment && typeof comment["text"] === "string") {
          pin.hidden = false;
          pin.replaceChildren(el("span", { class: "name", text: `📌 ${String(comment["name"] ?? "")}` }),
            el("span", { class: "text", text: comment["text"] }));
        } else {
          pin.hidden = true;
        }
        return;
      }
      default:
        return; // a frame this page does not know either
    }
  }

  private event(text: string, kind: "ok" | "warn" | "bad"): void {
    const list = byId("events");
    list.prepend(el("li", { class: kind }, el("time", { text: clock(Date.now()) }), ` ${text}`));
    while (list.children.length > EVENTS_SHOWN) list.lastElementChild?.remove();
  }
}

function nodeId(commentId: string): string {
  return `c-${commentId}`;
}

function main(): void {
  const stream = streamOfPage();
  document.title = `${stream} · Chorus`;
  byId("stream").textContent = stream;
  const token = takeToken("chorus-token");
  if (token === null) {
    byId("sign-in").hidden = false;
    byId<HTMLInputElement>("token").focus();
    byId("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      sessionStorage.setItem("chorus-token", byId<HTMLInputElement>("token").value.trim());
      location.reload();
    });
    return;
  }
  const params = new URLSearchParams(location.search);
  const transport = params.get("transport");
  const client = new ChorusClient({
    seeds: [location.origin], token, stream, timelineLimit: PAGE_LIMIT,
    // The gateway that served the page is in the region to watch, unless told otherwise.
    prefer: params.get("region") ?? "seed",
    transport: transport === "ws" || transport === "sse" || transport === "poll" ? transport : "auto",
  });
  (window as unknown as { chorus: ChorusClient }).chorus = client;
  new ViewerPage(client).start();
  client.start().catch((err: Error) => {
    byId("region").textContent = `no region answered (${err.message})`;
  });
}

main();
