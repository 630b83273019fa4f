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
  const summary = parts.map((p) => `${p.label}: ${p.value}`).join(", ");
  const svg = svgEl("svg", { class: "bar", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": summary });
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

/** A round top for a y axis: 1, 2 or 5 times a power of ten, at or above `v`. */
export function niceTop(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((x) => x >= v - 1e-12);
}

/** An axis value as short text that still tells small scales apart (0.005, 0.01, 0.025). */
export function tickText(v) {
  if (v >= 10 || Number.isInteger(v)) return String(Math.round(v));
  if (!(v > 0)) return "0";
  const decimals = Math.min(6, Math.max(1, 2 - Math.floor(Math.log10(v))));
  return String(Number(v.toFixed(decimals)));
}

/**
 * Lines over a fixed time window with a y axis (0, half, top, in `unit`) and an x axis
 * (minutes before now). series: [{values: (number|null)[], color, fill?}], `times`: each
 * value's time in seconds (the last is "now"). Gaps (null) break the line.
 */
export function timeChart(series, { times, windowS = 120, unit = "", label = "", max = null, width = 300, height = 96 } = {}) {
  const left = 34;
  const bottom = 14;
  const top = 6;
  const right = 6;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const all = series.flatMap((s) => s.values.filter((v) => typeof v === "number" && Number.isFinite(v)));
  const yTop = max ?? niceTop(Math.max(0, ...all));
  const now = times.length ? times[times.length - 1] : 0;
  const x = (t) => left + ((t - (now - windowS)) / windowS) * plotW;
  const y = (v) => top + plotH - (Math.min(v, yTop) / yTop) * plotH;
  const latest = series.map((s) => s.values[s.values.length - 1]).filter((v) => typeof v === "number");
  const svg = svgEl("svg", {
    class: "chart chart-axes",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `${label}, last ${Math.round(windowS / 60)} min, scale 0 to ${tickText(yTop)} ${unit}${latest.length ? `; now ${latest.map((v) => tickText(v)).join(" and ")} ${unit}` : ""}`,
    "data-y-top": yTop,
    "data-window-s": windowS,
  });
  const axis = svgEl("g", { class: "axis", "font-size": 9, fill: "#667085" });
  for (const v of [0, yTop / 2, yTop]) {
    axis.append(svgEl("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), stroke: v === 0 ? "#c4cad4" : "#eef1f5", "stroke-width": 1 }));
    const text = svgEl("text", { x: left - 4, y: y(v) + 3, "text-anchor": "end", class: "tick-y" });
    text.textContent = tickText(v);
    axis.append(text);
  }
  const minutes = Math.round(windowS / 60);
  for (let m = minutes; m >= 0; m -= 1) {
    const tx = x(now - m * 60);
    axis.append(svgEl("line", { x1: tx, x2: tx, y1: top + plotH, y2: top + plotH + 3, stroke: "#c4cad4" }));
    const text = svgEl("text", { x: tx, y: height - 2, "text-anchor": m === minutes ? "start" : m === 0 ? "end" : "middle", class: "tick-x" });
    text.textContent = m === 0 ? "now" : `−${m} min`;
    axis.append(text);
  }
  if (unit) {
    const u = svgEl("text", { x: left + 3, y: top + 8, class: "unit" });
    u.textContent = unit;
    axis.append(u);
  }
  svg.append(axis);
  for (const s of series) {
    const runs = [];
    let run = [];
    s.values.forEach((v, i) => {
      const t = times[i];
      if (typeof v === "number" && Number.isFinite(v) && typeof t === "number" && t >= now - windowS) run.push([x(t), y(v)]);
      else if (run.length) {
        runs.push(run);
        run = [];
      }
    });
    if (run.length) runs.push(run);
    for (const points of runs) {
      const d = points.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" ");
      if (s.fill && points.length > 1) {
        const base = (top + plotH).toFixed(1);
        svg.append(svgEl("polygon", { points: `${points[0][0].toFixed(1)},${base} ${d} ${points[points.length - 1][0].toFixed(1)},${base}`, fill: s.color, "fill-opacity": 0.12 }));
      }
      if (points.length === 1) svg.append(svgEl("circle", { cx: points[0][0], cy: points[0][1], r: 1.8, fill: s.color }));
      else svg.append(svgEl("polyline", { points: d, fill: "none", stroke: s.color, "stroke-width": 1.6, "stroke-linejoin": "round" }));
    }
  }
  return svg;
}
