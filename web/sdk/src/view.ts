/**
 * What a viewer holds of one stream, built from the server's frames: the timeline, the
 * cursor, the tier with what the last batch stood for ("showing n of m"), the last snapshot,
 * the pin, the counts. Pure: `apply` takes one decoded frame and says what changed, and the
 * client (client.ts) turns that into events and history pages. The same rules as the Python
 * SDK's `Client._on_frame` (chorus/sdk/client.py); tests/vectors/view.json holds both to them.
 *
 * Hot streams (docs/protocol.md, "Hot streams") cost the application nothing:
 * - a `tier` frame's cursor is kept, so a resume after a tier change starts where the
 *   server says, and repeats nothing;
 * - a sampled batch (with `sample`, perhaps without items) moves the cursor: what the sample
 *   left out is no gap, and above push a resume the server could not replay is not paged in
 *   from history either (the timeline is a sample by design);
 * - a snapshot's priority lane and comments join the timeline like any comment: each once,
 *   in id order, whichever of a batch, a snapshot, history or a post brought it first.
 */

import type { Comment } from "./comment.js";
import type { Hello, Reactions, Sample, ServerFrame, Snapshot, Tier, Viewers } from "./frames.js";
import { Timeline } from "./timeline.js";

/** Retracted ids remembered, so that a later copy (history, another region) stays out. */
export const RETRACTED_KEPT = 10_000;

/** What one frame changed, in order. */
export type Change =
  /** New in the timeline. */
  | { kind: "comment"; comment: Comment }
  /** Taken down: out of the timeline (those it held), and kept out. */
  | { kind: "retract"; ids: string[] }
  | { kind: "pin"; comment: Comment | null }
  /** The tier the stream is delivered in is now `name` (`tier` null: push, by default). */
  | { kind: "tier"; name: string; tier: Tier | null }
  /** A sampled batch: what it stands for. */
  | { kind: "sample"; sample: Sample }
  | { kind: "snapshot"; snapshot: Snapshot }
  | { kind: "viewers"; viewers: Viewers }
  | { kind: "reactions"; reactions: Reactions }
  /** Comments may be missing that history can give: page it (a fresh arrival in a region,
   * or a push-tier resume the server could not replay). */
  | { kind: "fill" };

/** The changes of one frame, each heard by the sink as it is made. */
class Changes {
  readonly list: Change[] = [];

  constructor(private readonly sink: (change: Change) => void) {}

  push(change: Change): void {
    this.list.push(change);
    this.sink(change);
  }
}

export class StreamView {
  readonly timeline: Timeline;
  /** The region the viewer is in, and its cursor there (valid in that region only). */
  region: string | null = null;
  cursor: string | null = null;
  /** The last `tier` frame since `hello` (null: push, as any connection until told). */
  tier: Tier | null = null;
  /** What the last batch stood for (null: every comment). */
  sample: Sample | null = null;
  /** The last snapshot document (its comments joined the timeline). */
  snapshot: Snapshot | null = null;
  pin: Comment | null = null;
  viewers: Viewers | null = null;
  reactions: Reactions | null = null;
  private readonly retracted = new Set<string>();
  /** The tier the last `tier` change said: a reconnect into the same tier is no change. */
  private announced = "push";
  /** Between `hello` and the frame after it: a stream above push says so right there. */
  private afterHello = false;

  constructor(timelineLimit = 10_000) {
    this.timeline = new Timeline(timelineLimit);
  }

  /** push, sampled or snapshot: how the stream is delivered now. */
  get tierName(): string {
    return this.tier?.tier ?? "push";
  }

  /** Adds a comment from anywhere (a frame, history, one's own post) unless it was taken
   * down; true when it is new in the timeline. */
  deliver(comment: Comment): boolean {
    return !this.retracted.has(comment.id) && this.timeline.add(comment);
  }

  /** One frame, received from a connection to `region`: what it changed, in order. `sink`
   * hears each change as it is made, so that a listener of a new comment finds the timeline
   * as it was when that comment joined (not yet holding the rest of its batch). */
  apply(frame: ServerFrame, region: string, sink: (change: Change) => void = () => undefined
  ): Change[] {
    const changes = new Changes(sink);
    if (frame.type !== "hello" && frame.type !== "tier" && this.afterHello) {
      // No `tier` right after `hello`: the stream is in push now.
      this.afterHello = false;
      this.announce(changes);
    }
    switch (frame.type) {
      case "hello":
        this.hello(frame, region, changes);
        break;
      case "comments":
        for (const item of frame.items) this.add(item, changes);
        this.cursor = frame.cursor;
        this.sample = frame.sample;
        if (frame.sample !== null) changes.push({ kind: "sample", sample: frame.sample });
        break;
      case "recovered":
        this.cursor = frame.cursor;
        if (!frame.recovered && this.tierName === "push") changes.push({ kind: "fill" });
        break;
      case "tier":
        this.afterHello = false;
        this.tier = frame;
        this.cursor = frame.cursor;
        if (frame.tier === "push") this.sample = null;
        this.announce(changes);
        break;
      case "snapshot":
        this.snapshot = frame;
        for (const item of [...frame.priority, ...frame.comments]) this.add(item, changes);
        changes.push({ kind: "snapshot", snapshot: frame });
        break;
      case "retract":
        for (const id of frame.ids) this.retract(id, changes);
        changes.push({ kind: "retract", ids: frame.ids });
        break;
      case "restore":
        this.retracted.delete(frame.comment.id);
        this.add(frame.comment, changes);
        break;
      case "pin":
        this.setPin(frame.comment, changes);
        break;
      case "viewers":
        this.viewers = frame;
        changes.push({ kind: "viewers", viewers: frame });
        break;
      case "reactions":
        this.reactions = frame;
        changes.push({ kind: "reactions", reactions: frame });
        break;
      case "ack":
      case "pong":
      case "error":
      case "bye":
      case "other":
        break; // answers to the client's own frames, the end of a connection, or unknown
    }
    return changes.list;
  }

  private hello(frame: Hello, region: string, changes: Changes): void {
    this.setPin(frame.pin, changes);
    this.tier = null; // a stream above push says so right after hello
    this.afterHello = true;
    const arrivedFresh = this.region !== region || this.cursor === null;
    this.region = region;
    if (arrivedFresh) {
      // New here (first connect, or a failover): cursors of another region mean nothing,
      // so whatever may be missing comes from this region's history.
      this.cursor = frame.cursor;
      changes.push({ kind: "fill" });
    }
  }

  private announce(changes: Changes): void {
    if (this.tierName === this.announced) return;
    this.announced = this.tierName;
    changes.push({ kind: "tier", name: this.tierName, tier: this.tier });
  }

  private add(comment: Comment, changes: Changes): void {
    if (this.deliver(comment)) changes.push({ kind: "comment", comment });
  }

  private retract(id: string, changes: Changes): void {
    this.timeline.remove(id);
    this.retracted.add(id);
    if (this.retracted.size > RETRACTED_KEPT) {
      this.retracted.delete(this.retracted.values().next().value as string);
    }
    if (this.pin !== null && this.pin.id === id) this.setPin(null, changes);
  }

  private setPin(comment: Comment | null, changes: Changes): void {
    if ((this.pin?.id ?? null) === (comment?.id ?? null) && this.pin?.text === comment?.text) {
      this.pin = comment;
      return;
    }
    this.pin = comment;
    changes.push({ kind: "pin", comment });
  }
}
