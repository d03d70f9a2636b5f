// Charts and the map drawn as inline SVG: no library, no build step, no network.
"use strict";
const SVG_NS = "http://www.w3.org/2000/svg";

function svgElement(name, attrs, text) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Horizontal bars: rows = [{label, value, note}], value in [0, max].
function barChart(container, rows, { max, format, colour } = {}) {
  container.replaceChildren();
  if (!rows.length) { container.textContent = "暂无数据"; return; }
  const top = max || Math.max(...rows.map((r) => r.value), 1);
  const rowHeight = 24, labelWidth = 110, width = 520, barSpace = width - labelWidth - 70;
  const svg = svgElement("svg", { viewBox: `0 0 ${width} ${rows.length * rowHeight + 8}`, role: "img",
    class: "bar-chart", width: "100%" });
  rows.forEach((row, i) => {
    const y = i * rowHeight + 4, w = Math.max(1, (row.value / top) * barSpace);
    svg.append(svgElement("text", { x: labelWidth - 6, y: y + 15, "text-anchor": "end", class: "axis" }, row.label));
    const bar = svgElement("rect", { x: labelWidth, y, width: w, height: rowHeight - 6, fill: colour || "#2f6fb3",
      class: "bar" });
    bar.append(svgElement("title", {}, `${row.label}: ${format ? format(row.value) : row.value}`));
    svg.append(bar);
    svg.append(svgElement("text", { x: labelWidth + w + 4, y: y + 15, class: "value" },
      format ? format(row.value) : String(row.value)));
  });
  container.append(svg);
}

// Vertical columns over days: rows = [{label, value}].
function columnChart(container, rows) {
  container.replaceChildren();
  if (!rows.length) { container.textContent = "暂无数据"; return; }
  const width = 520, height = 200, pad = 28, top = Math.max(...rows.map((r) => r.value), 1);
  const step = (width - pad * 2) / rows.length;
  const svg = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "column-chart",
    width: "100%" });
  svg.append(svgElement("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, class: "axis-line" }));
  rows.forEach((row, i) => {
    const h = (row.value / top) * (height - pad * 2), x = pad + i * step;
    const bar = svgElement("rect", { x: x + 2, y: height - pad - h, width: Math.max(2, step - 4), height: h,
      fill: "#2f6fb3", class: "bar" });
    bar.append(svgElement("title", {}, `${row.label}: ${row.value}`));
    svg.append(bar);
    if (rows.length <= 16 || i % Math.ceil(rows.length / 8) === 0) {
      svg.append(svgElement("text", { x: x + step / 2, y: height - 10, "text-anchor": "middle", class: "axis" },
        row.label.slice(5)));
    }
  });
  svg.append(svgElement("text", { x: pad, y: 14, class: "axis" }, `最高 ${top}`));
  container.append(svg);
}

// Open cases by grid on the district's bounding box (equirectangular is fine at this scale).
function hotspotMap(container, spots) {
  container.replaceChildren();
  const b = DISTRICT_BBOX, width = 560, height = Math.round(width * (b.maxLat - b.minLat) /
    ((b.maxLon - b.minLon) * Math.cos((b.minLat + b.maxLat) / 2 * Math.PI / 180)));
  const x = (lon) => ((lon - b.minLon) / (b.maxLon - b.minLon)) * width;
  const y = (lat) => ((b.maxLat - lat) / (b.maxLat - b.minLat)) * height;
  const svg = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "map-svg", width: "100%" });
  svg.append(svgElement("rect", { x: 0, y: 0, width, height, class: "map-frame" }));
  for (let lon = 117.2; lon < b.maxLon; lon += 0.1) {
    svg.append(svgElement("line", { x1: x(lon), y1: 0, x2: x(lon), y2: height, class: "graticule" }));
    svg.append(svgElement("text", { x: x(lon) + 2, y: height - 4, class: "axis" }, lon.toFixed(1) + "°E"));
  }
  for (let lat = 36.5; lat < b.maxLat; lat += 0.1) {
    svg.append(svgElement("line", { x1: 0, y1: y(lat), x2: width, y2: y(lat), class: "graticule" }));
    svg.append(svgElement("text", { x: 2, y: y(lat) - 2, class: "axis" }, lat.toFixed(1) + "°N"));
  }
  const top = Math.max(1, ...spots.map((s) => s.open));
  for (const spot of spots.filter((s) => s.lat !== null && s.lon !== null)) {
    const circle = svgElement("circle", { cx: x(spot.lon), cy: y(spot.lat), r: 4 + 14 * Math.sqrt(spot.open / top),
      class: spot.overdue ? "spot overdue" : "spot" });
    circle.append(svgElement("title", {}, `${spot.name || spot.key}：在办 ${spot.open}，超期 ${spot.overdue}`));
    svg.append(circle);
  }
  container.append(svg);
}
