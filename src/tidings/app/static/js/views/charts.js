// Small inline SVG charts for the admin page: sparklines and stacked bars. No library;
// every chart is a fresh <svg> built from numbers, so a re-render is a replace.

const SVG = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/**
 * Lines over the same time axis. series: [{values: (number|null)[], color, fill?}];
 * the y axis runs from 0 to the largest value (or `max`). Gaps (null) break the line.
 */
export function sparkline(series, { width = 240, height = 48, max = null, label = "" } = {}) {
  const svg = svgEl("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img", "aria-label": label });
  const all = series.flatMap((s) => s.values.filter((v) => typeof v === "number" && Number.isFinite(v)));
  const top = max ?? Math.max(1e-9, ...all) * 1.15;
  const n = Math.max(2, ...series.map((s) => s.values.length));
  const x = (i) => (i / (n - 1)) * (width - 2) + 1;
  const y = (v) => height - 2 - (Math.min(v, top) / top) * (height - 4);
  svg.append(svgEl("line", { x1: 0, x2: width, y1: height - 1.5, y2: height - 1.5, stroke: "#e6e9ee", "stroke-width": 1 }));
  for (const s of series) {
    const offset = n - s.values.length;
    let run = [];
    const runs = [];
    s.values.forEach((v, i) => {
      if (typeof v === "number" && Number.isFinite(v)) run.push([x(i + offset), y(v)]);
      else if (run.length) {
        runs.push(run);
        run = [];
      }
    });
    if (run.length) runs.push(run);
    for (const points of runs) {
      const d = points.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" ");
      if (s.fill && points.length > 1) {
        const area = `${points[0][0].toFixed(1)},${height - 1.5} ${d} ${points[points.length - 1][0].toFixed(1)},${height - 1.5}`;
        svg.append(svgEl("polygon", { points: area, fill: s.color, "fill-opacity": 0.12 }));
      }
      if (points.length === 1) svg.append(svgEl("circle", { cx: points[0][0], cy: points[0][1], r: 1.8, fill: s.color }));
      else svg.append(svgEl("polyline", { points: d, fill: "none", stroke: s.color, "stroke-width": 1.6, "vector-effect": "non-scaling-stroke", "stroke-linejoin": "round" }));
    }
  }
  return svg;
}

/** One horizontal bar split into parts: [{value, color, label}]. */
export function stackedBar(parts, { width = 160, height = 10, total = null } = {}) {
  const svg = svgEl("svg", { class: "bar", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  const sum = total ?? parts.reduce((a, p) => a + p.value, 0);
  svg.append(svgEl("rect", { x: 0, y: 0, width, height, rx: 2, fill: "#eef1f5" }));
  let at = 0;
  for (const p of parts) {
    if (!sum || p.value <= 0) continue;
    const w = (p.value / sum) * width;
    const rect = svgEl("rect", { x: at, y: 0, width: Math.max(w, 1), height, fill: p.color });
    const title = svgEl("title");
    title.textContent = `${p.label}: ${p.value}`;
    rect.append(title);
    svg.append(rect);
    at += w;
  }
  return svg;
}
