// Time-series charts as hand-written SVG: an area under a line, the y maximum and
// the time range as labels. `points` are {t: Date, v: number|null}; null is a gap.
// The plot keeps PAD_X inside both sides, so a lone point (a round dot) at either
// end is drawn whole rather than half cut off by the viewBox.

import { h, s } from "./dom.js";

const W = 300, H = 100, PAD_X = 3, PAD_B = 12, PAD_T = 10;

export function lineChart({ id, title, points, format, max }) {
  const values = points.map((p) => p.v).filter((v) => v !== null && v !== undefined);
  const top = max ?? Math.max(1e-9, ...values);
  const t0 = points.length ? points[0].t.getTime() : 0;
  const t1 = points.length ? points[points.length - 1].t.getTime() : 1;
  const x = (t) => PAD_X + ((t.getTime() - t0) / Math.max(1, t1 - t0)) * (W - 2 * PAD_X);
  const y = (v) => PAD_T + (1 - v / top) * (H - PAD_T - PAD_B);
  const runs = [];
  let run = [];
  for (const p of points) {
    if (p.v === null || p.v === undefined) { if (run.length) runs.push(run); run = []; } else run.push(p);
  }
  if (run.length) runs.push(run);
  const base = y(0);
  const shapes = runs.flatMap((r) => {
    const line = r.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join("");
    const area = `${line}L${x(r[r.length - 1].t).toFixed(1)},${base}L${x(r[0].t).toFixed(1)},${base}Z`;
    return r.length > 1
      ? [s("path", { class: "area", d: area }), s("path", { class: "line", d: line })]
      : [s("path", { class: "dot", d: `M${x(r[0].t).toFixed(1)},${y(r[0].v).toFixed(1)}h0` })];
  });
  const last = values.length ? values[values.length - 1] : null;
  const sum = values.reduce((a, b) => a + b, 0);
  const label = `${title}: ${values.length} points, latest ${last === null ? "none" : format(last)}, peak ${values.length ? format(Math.max(...values)) : "none"}`;
  const time = (t) => t.toISOString().slice(11, 16);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": label },
    s("line", { class: "axis", x1: 0, y1: base, x2: W, y2: base }),
    ...shapes,
    s("text", { x: 2, y: 8 }, format(top)),
    points.length ? s("text", { x: 2, y: H - 1 }, time(points[0].t)) : null,
    points.length ? s("text", { x: W - 2, y: H - 1, "text-anchor": "end" }, time(points[points.length - 1].t)) : null);
  return h("figure", { class: "chart", id, "data-points": values.length, "data-sum": sum },
    h("figcaption", {}, h("span", {}, title), h("span", {}, last === null ? "no data" : `now ${format(last)}`)), svg);
}

export function minuteSeries(buckets, from, to, pick) {
  // one point per minute from `from` to `to`; a minute without a bucket is 0 for
  // counts (`pick` gives a number) or a gap for ratios (`pick` gives null)
  const byMinute = new Map(buckets.map((b) => [Math.floor(Date.parse(b.bucket) / 60000), b]));
  const start = Math.floor(Date.parse(from) / 60000), end = Math.floor(Date.parse(to) / 60000);
  const out = [];
  for (let m = start; m <= end; m += 1) out.push({ t: new Date(m * 60000), v: pick(byMinute.get(m)) });
  return out;
}
