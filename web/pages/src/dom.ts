// DOM helpers for the pages. Every piece of text from the network (comments, names, region
// names, frames) goes in through textContent or an attribute: never through innerHTML, so
// hostile text renders as text.

export type Child = Node | string | null | undefined | false;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K, props: { class?: string; text?: string; attrs?: Record<string, string> } = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.class) node.className = props.class;
  if (props.text !== undefined) node.textContent = props.text;
  for (const [key, value] of Object.entries(props.attrs ?? {})) node.setAttribute(key, value);
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child); // a string is appended as a text node
  }
  return node;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (node === null) throw new Error(`the page has no #${id}`);
  return node as T;
}

/** A token from the address (#token=, or ?token=), kept for the tab's life and removed
 * from the address bar so that it is not shared with a copied link. */
export function takeToken(storageKey: string): string | null {
  const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
  const query = new URLSearchParams(location.search);
  const given = hash.get("token") ?? query.get("token");
  if (given) {
    sessionStorage.setItem(storageKey, given);
    hash.delete("token");
    query.delete("token");
    const search = query.toString();
    const rest = hash.toString();
    history.replaceState(null, "", `${location.pathname}${search ? `?${search}` : ""}${rest ? `#${rest}` : ""}`);
    return given;
  }
  return sessionStorage.getItem(storageKey);
}

export function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}
