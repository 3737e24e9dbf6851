/**
 * Comment ids (chorus/ids.py): `<ms:12 hex><seq:4 hex>-<node>`, time-ordered and unique
 * without coordination. Sorting ids as strings sorts them by time, so a client renders
 * comments of every region in id order. Pure.
 */

const ID = /^([0-9a-f]{12})([0-9a-f]{4})-([a-z][a-z0-9-]*\.[0-9]+)$/;

export function isId(value: string): boolean {
  return ID.test(value);
}

/** The millisecond timestamp inside an id; throws RangeError when it is not an id. */
export function idTimeMs(commentId: string): number {
  const match = ID.exec(commentId);
  if (match === null) throw new RangeError(`not a comment id: ${JSON.stringify(commentId)}`);
  return parseInt(match[1] as string, 16);
}

/** The node (`<region>.<gateway index>`) that made the id; throws when it is not an id. */
export function idNode(commentId: string): string {
  const match = ID.exec(commentId);
  if (match === null) throw new RangeError(`not a comment id: ${JSON.stringify(commentId)}`);
  return match[3] as string;
}

/** Id order, the order a timeline renders in (plain code-unit order: ids are ASCII). */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
