// The viewer page: one stream's comments as they arrive, a post box with replies, the region
// it is connected to with the round trip to its gateway, its reconnects and failovers, the
// viewer counts, reactions and the pin, and a hot stream's tier ("showing n of m"). Everything
// comes through the browser SDK's typed events (web/sdk); the page reads no raw frame.

import { ChorusClient, type Comment, type Reactions, type Sample, type Snapshot, type Tier,
  type Viewers } from "chorus-client";

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
    c.on("failback", (from, to) => {
      byId("status").dataset["failbacks"] = String(c.failbacks);
      this.event(`${to} is healthy again: leaving ${from} to go back home`, "ok");
    });
    c.on("latency", (ms) => {
      byId("latency").textContent = `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
      byId("status").dataset["latency"] = String(ms);
    });
    c.on("viewers", (count, viewers) => this.viewers(count, viewers));
    c.on("reactions", (reactions) => this.reactions(reactions));
    c.on("pin", (comment) => this.pin(comment));
    c.on("retract", (ids) => {
      // The client took them out of its timeline; the page does too.
      for (const id of ids) document.getElementById(nodeId(id))?.remove();
    });
    c.on("tier", (name, tier) => this.tier(name, tier));
    c.on("sample", (sample) => this.sample(sample));
    c.on("snapshot", (snapshot) => this.snapshot(snapshot));
    c.on("gap", (gap) => {
      this.list.append(el("li", { class: "gap", attrs: { role: "note" },
        text: `Some comments after ${gap.afterId} may be missing.` }));
    });
    c.on("error", (err) => this.event(err.message, "bad"));
    this.bindForm();
  }

  // -- comments ------------------------------------------------------------------------------

  private show(comment: Comment): void {
    const at = this.client.timeline.indexOf(comment.id);
    if (at < 0) return; // too old for the page
    const item = this.render(comment);
    // Before the next comment that is on the page (an application's listener may run after
    // later comments joined the timeline).
    let nextNode: HTMLElement | null = null;
    const comments = this.client.timeline.comments;
    for (let i = at + 1; i < comments.length && nextNode === null; i++) {
      nextNode = document.getElementById(nodeId((comments[i] as Comment).id));
    }
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

  // -- the stream's state -----------------------------------------------------------------------

  private viewers(count: number, viewers: Viewers): void {
    const node = byId("viewers");
    node.hidden = false;
    const region = this.client.region ?? "this region";
    node.textContent = viewers.total > 0 ? `${viewers.total} watching (${count} in ${region})`
      : `${count} watching in ${region}`;
  }

  private reactions(reactions: Reactions): void {
    const box = byId("reactions");
    box.hidden = false;
    box.replaceChildren(...Object.entries(reactions.totals)
      .map(([kind, n]) => el("span", { class: "reaction", text: `${kind} ${n}` })));
  }

  private pin(comment: Comment | null): void {
    const pin = byId("pin");
    pin.hidden = comment === null;
    pin.replaceChildren(...comment === null ? [] : [
      el("span", { class: "name", text: `📌 ${comment.name}` }),
      el("span", { class: "text", text: comment.text })]);
  }

  /** A tier change is announced, never drawn as a gap: nothing was lost, the stream is
   * delivered another way from here (and history has every comment). */
  private tier(name: string, tier: Tier | null): void {
    const node = byId("tier");
    node.dataset["tier"] = name;
    delete node.dataset["shown"];
    delete node.dataset["posted"];
    node.hidden = name === "push";
    if (name === "sampled") {
      node.textContent = "showing a sample";
      this.event(`busy stream: a sample of its comments, up to ${tier?.per_viewer_per_s ?? "?"} a `
        + "second (the host's, moderators', verified users' and your own always)", "warn");
    } else if (name === "snapshot") {
      node.textContent = "snapshot";
      this.event(`very busy stream: a snapshot every ${tier?.interval_s ?? "?"} s (the host's, `
        + "moderators', verified users' and your own comments always)", "warn");
    } else if (name === "push") {
      node.textContent = "";
      this.event("every comment shown again", "ok");
    } else {
      node.textContent = `tier: ${name}`;
    }
  }

  private sample(sample: Sample): void {
    if (this.client.tierName === "snapshot") return; // the document says more (below)
    const node = byId("tier");
    node.hidden = false;
    node.dataset["shown"] = String(sample.shown);
    node.dataset["posted"] = String(sample.posted);
    node.textContent = `showing ${sample.shown} of ${sample.posted} in the last second`;
  }

  private snapshot(snapshot: Snapshot): void {
    const node = byId("tier");
    node.hidden = false;
    node.dataset["posted"] = String(snapshot.posted);
    node.textContent = `snapshot: ${snapshot.rate_per_s} comments/s, ${snapshot.viewers} watching`;
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
