// Small inline SVG icons, 16x16 viewBox, built as DOM nodes: nothing here is
// parsed as markup. `name` may come from data (a story's type): only a name in
// SHAPES draws anything or reaches a class name; any other gives an empty icon.

const SVG = "http://www.w3.org/2000/svg";

/** Each icon: its shapes as [element, attributes]. */
const SHAPES = {
  feature: [["path", { d: "M8 1.5l1.9 4 4.4.5-3.3 3 .9 4.4L8 11.2 4.1 13.4 5 9 1.7 6l4.4-.5z", fill: "#e6b000", stroke: "#b98d00", "stroke-width": ".8", "stroke-linejoin": "round" }]],
  bug: [
    ["ellipse", { cx: "8", cy: "9", rx: "4", ry: "5", fill: "#d9453b" }],
    ["path", { d: "M8 4v10M3 6l2 1.5M13 6l-2 1.5M2.5 10H4M12 10h1.5M3.5 13.5 5 12M12.5 13.5 11 12", stroke: "#a3261e", "stroke-width": "1.1", "stroke-linecap": "round" }],
    ["circle", { cx: "8", cy: "3.5", r: "1.8", fill: "#a3261e" }],
  ],
  chore: [["path", { d: "M8 5.2a2.8 2.8 0 1 0 0 5.6 2.8 2.8 0 0 0 0-5.6zm6 3.6V7.2l-1.7-.4a4.6 4.6 0 0 0-.5-1.2l.9-1.5-1.1-1.1-1.5.9c-.4-.2-.8-.4-1.2-.5L8.8 2H7.2l-.4 1.7c-.4.1-.8.3-1.2.5l-1.5-.9L3 4.4l.9 1.5c-.2.4-.4.8-.5 1.2L2 7.2v1.6l1.7.4c.1.4.3.8.5 1.2l-.9 1.5L4.4 13l1.5-.9c.4.2.8.4 1.2.5L7.2 14h1.6l.4-1.7c.4-.1.8-.3 1.2-.5l1.5.9 1.1-1.1-.9-1.5c.2-.4.4-.8.5-1.2z", fill: "#6b7280" }]],
  release: [
    ["path", { d: "M3.5 1.5v13", stroke: "#1f5fae", "stroke-width": "1.6", "stroke-linecap": "round" }],
    ["path", { d: "M4.3 2.2h8.2l-2 3.2 2 3.2H4.3z", fill: "#2f7bd6" }],
  ],
  comment: [["path", { d: "M2.5 3h11v7.5H7l-3 2.5v-2.5H2.5z", fill: "none", stroke: "currentColor", "stroke-width": "1.3", "stroke-linejoin": "round" }]],
  tasks: [
    ["rect", { x: "2.5", y: "2.5", width: "11", height: "11", rx: "2", fill: "none", stroke: "currentColor", "stroke-width": "1.3" }],
    ["path", { d: "M5 8.2l2 2 4-4.2", fill: "none", stroke: "currentColor", "stroke-width": "1.4", "stroke-linecap": "round", "stroke-linejoin": "round" }],
  ],
  plus: [["path", { d: "M8 3v10M3 8h10", stroke: "currentColor", "stroke-width": "1.6", "stroke-linecap": "round" }]],
  move: [["path", { d: "M8 1.5v13M5 4.5l3-3 3 3M5 11.5l3 3 3-3", fill: "none", stroke: "currentColor", "stroke-width": "1.5", "stroke-linecap": "round", "stroke-linejoin": "round" }]],
  close: [["path", { d: "M4 4l8 8M12 4l-8 8", stroke: "currentColor", "stroke-width": "1.6", "stroke-linecap": "round" }]],
};

function svgNode(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value);
  return el;
}

export function icon(name, { size = 16, title = null } = {}) {
  const known = Object.hasOwn(SHAPES, name);
  const px = String(Number.isFinite(size) ? size : 16);
  const svg = svgNode("svg", { class: known ? `icon icon-${name}` : "icon", width: px, height: px, viewBox: "0 0 16 16", "aria-hidden": title ? "false" : "true" });
  if (title) {
    svg.setAttribute("role", "img");
    const t = svgNode("title", {});
    t.textContent = String(title);
    svg.append(t);
  }
  if (known) for (const [tag, attrs] of SHAPES[name]) svg.append(svgNode(tag, attrs));
  return svg;
}
