/**
 * What a client renders (chorus/timeline.py): comments in id order, each once, and explicit
 * gaps. Pure; held to tests/vectors/timeline.json together with the Python `Timeline`.
 *
 * Comment ids sort by time across regions, so a timeline ordered by id is the same whichever
 * region delivered what, and a comment that arrives twice (a resume, a failover, a history
 * fill) is recognised by its id. Where the client may have missed comments and could not
 * fetch them, the timeline holds a `Gap` instead of silently joining the two sides.
 */

import type { Comment } from "./comment.js";

/** Comments between `afterId` and `beforeId` (exclusive) may be missing; `beforeId` null: up
 * to now. */
export interface Gap {
  readonly afterId: string;
  readonly beforeId: string | null;
}

export class Timeline {
  private readonly list: Comment[] = [];
  private readonly seen = new Set<string>();
  private gapList: Gap[] = [];
  /** Copies received and dropped because the timeline had them already. */
  duplicates = 0;

  /** At most `limit` newest comments are kept; older ones fall off. */
  constructor(readonly limit = 10_000) {}

  /** True when the comment is new here. */
  add(comment: Comment): boolean {
    if (this.seen.has(comment.id)) {
      this.duplicates += 1;
      return false;
    }
    this.seen.add(comment.id);
    const last = this.list[this.list.length - 1];
    if (last === undefined || comment.id > last.id) {
      this.list.push(comment);
    } else {
      this.list.splice(this.insertionPoint(comment.id), 0, comment);
    }
    if (this.list.length > this.limit) {
      const dropped = this.list.shift() as Comment;
      this.seen.delete(dropped.id);
    }
    return true;
  }

  /** Takes a retracted comment out; true when it was there (chorus/timeline.py's `remove`). */
  remove(commentId: string): boolean {
    const at = this.indexOf(commentId);
    if (!this.seen.delete(commentId)) return false;
    if (at >= 0) this.list.splice(at, 1);
    return true;
  }

  /** How many of `comments` were new. */
  extend(comments: Iterable<Comment>): number {
    let added = 0;
    for (const c of comments) if (this.add(c)) added += 1;
    return added;
  }

  /** Where an id goes: after every id <= it (late arrivals are common; no copying). */
  private insertionPoint(id: string): number {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.list[mid] as Comment).id <= id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  get lastId(): string | null {
    return this.list.length ? (this.list[this.list.length - 1] as Comment).id : null;
  }

  has(commentId: string): boolean {
    return this.seen.has(commentId);
  }

  /** The position of a comment, or -1. */
  indexOf(commentId: string): number {
    if (!this.seen.has(commentId)) return -1;
    const at = this.insertionPoint(commentId) - 1;
    return at >= 0 && (this.list[at] as Comment).id === commentId ? at : -1;
  }

  get comments(): readonly Comment[] {
    return this.list;
  }

  ids(): string[] {
    return this.list.map((c) => c.id);
  }

  get gaps(): readonly Gap[] {
    return this.gapList;
  }

  markGap(afterId: string, beforeId: string | null): void {
    this.gapList.push({ afterId, beforeId });
  }

  /** History covered `gap`; a comment inside a gap alone proves nothing. */
  fillGap(gap: Gap): void {
    this.gapList = this.gapList.filter((g) => g.afterId !== gap.afterId || g.beforeId !== gap.beforeId);
  }
}
