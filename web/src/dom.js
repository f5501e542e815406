// Building the page from data without markup: text goes in as text nodes, so a stranger's task
// title can never run as script.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value != null && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function formatMsat(msat) {
  const sat = Math.floor(Number(msat) / 1000);
  return `${sat.toLocaleString("en")} sat`;
}

/** A Unix time as a date a person reads, in UTC so every reader sees the same words. */
export function formatTime(seconds) {
  if (seconds == null) return "—";
  const iso = new Date(Number(seconds) * 1000).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

/** A pubkey shortened for reading; the whole key stays in links and titles. */
export const shortKey = (pubkey) => `${pubkey.slice(0, 8)}…${pubkey.slice(-4)}`;

/** A link to a pubkey's reputation page. */
export function keyLink(pubkey) {
  return el("a", { href: `/reputation/${pubkey}`, title: pubkey, class: "key" }, shortKey(pubkey));
}

/** A definition list of [label, value] pairs (values are text or nodes). */
export function fields(pairs) {
  const list = el("dl", { class: "fields" });
  for (const [label, value] of pairs) list.append(el("dt", {}, label), el("dd", {}, value));
  return list;
}

/** A form input with its label around it. */
export function labelled(text, input) {
  return el("label", {}, el("span", {}, text), input);
}
