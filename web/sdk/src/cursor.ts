/**
 * Resume cursors (region/cursor.py): `<region>:<epoch>:<seq>`, a position in one region's
 * sequence of a stream's comments. The protocol calls them opaque, and the client never
 * builds one; it reads one only to know which region issued it, because a cursor resumes
 * only in its own region (another answers it with `recovered: false`). Pure.
 */

const CURSOR = /^([a-z][a-z0-9-]{0,30}[a-z0-9]):([0-9a-z]{1,16}):([0-9]{1,19})$/;

export interface Cursor {
  readonly region: string;
  readonly epoch: string;
  /** The region log's sequence of the last comment the viewer has (0: none yet). */
  readonly seq: bigint;
}

/** The cursor in `text`, or null when it is not one. */
export function parseCursor(text: string): Cursor | null {
  const match = CURSOR.exec(text);
  if (match === null) return null;
  return { region: match[1] as string, epoch: match[2] as string, seq: BigInt(match[3] as string) };
}

export function encodeCursor(cursor: Cursor): string {
  return `${cursor.region}:${cursor.epoch}:${cursor.seq.toString()}`;
}

/** `cursor` when it can resume in `region`, else null (join there at the head instead). */
export function cursorFor(cursor: string | null, region: string): string | null {
  if (cursor === null) return null;
  const parsed = parseCursor(cursor);
  return parsed !== null && parsed.region === region ? cursor : null;
}
