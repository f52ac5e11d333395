// A line chart drawn as SVG by hand: a few series over the last N samples, rescaled to
// the largest value shown. No library.
const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#0b5cad", "#d9480f", "#2b8a3e", "#862e9c"];

export class LineChart {
  constructor(title, series, unit = "") {
    Object.assign(this, { title, series, unit, points: [] });
    this.el = document.createElement("figure");
    this.el.className = "card chart";
    this.el.dataset.chart = title;
    this.caption = document.createElement("figcaption");
    this.svg = document.createElementNS(NS, "svg");
    this.svg.setAttribute("viewBox", "0 0 300 100");
    this.svg.setAttribute("preserveAspectRatio", "none");
    this.svg.setAttribute("role", "img");
    this.svg.setAttribute("aria-label", title);
    this.el.append(this.caption, this.svg);
    this.render();
  }

  push(values, keep = 60) {
    this.points.push(values);
    if (this.points.length > keep) this.points.shift();
    this.render();
  }

  render() {
    const last = this.points[this.points.length - 1] || [];
    this.caption.replaceChildren();
    const head = document.createElement("div");
    head.textContent = this.title;
    const legend = document.createElement("div");
    legend.className = "legend";
    this.series.forEach((name, i) => {
      const span = document.createElement("span");
      span.textContent = `${name}: ${last[i] === undefined ? "–" : fmt(last[i])}${this.unit}`;
      span.dataset.series = name;
      span.dataset.value = last[i] === undefined ? "" : String(last[i]);
      legend.append(span);
    });
    this.caption.append(head, legend);
    const max = Math.max(1e-9, ...this.points.flat());
    const n = Math.max(2, this.points.length);
    this.svg.replaceChildren();
    for (const y of [25, 50, 75]) {
      const line = document.createElementNS(NS, "line");
      for (const [k, v] of Object.entries({ x1: 0, x2: 300, y1: y, y2: y, stroke: "#e3e6ea" }))
        line.setAttribute(k, v);
      this.svg.append(line);
    }
    this.series.forEach((_, i) => {
      const d = this.points
        .map((p, j) => `${j ? "L" : "M"}${((j * 300) / (n - 1)).toFixed(1)},${(98 - (p[i] / max) * 94).toFixed(1)}`)
        .join(" ");
      const path = document.createElementNS(NS, "path");
      path.setAttribute("d", d || "M0,98");
      path.setAttribute("fill", "none");
      path.setAttribute("stroke", COLORS[i % COLORS.length]);
      path.setAttribute("stroke-width", "2");
      path.setAttribute("vector-effect", "non-scaling-stroke");
      this.svg.append(path);
    });
  }
}

function fmt(v) {
  return Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1);
}
