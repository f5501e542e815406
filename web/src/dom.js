// Building the page from data without markup: text goes in as text nodes, so a stranger's task
// title can never run as script.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function formatMsat(msat) {
  const sat = Math.floor(Number(msat) / 1000);
  return `${sat.toLocaleString("en")} sat`;
}
