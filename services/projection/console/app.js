// The operators' console: hash routes #/search, #/case/<id>, #/dashboard, #/map over the query API.
"use strict";
const API = new URL("../", document.baseURI).pathname.replace(/\/$/, ""); // works behind a path prefix
const state = { cursor: null, params: null };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value; else if (value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children.flat()) node.append(child instanceof Node ? child : String(child ?? "—"));
  return node;
}

const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString("zh-CN", { hour12: false, timeZone: "Asia/Shanghai" }) : "—");
const pct = (v) => (v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%");
const badge = (kind, code) => (code ? el("span", { class: `badge ${kind === "card" ? code : "status"}` }, label(kind, code)) : "—");

async function api(path, params) {
  const url = new URL(API + path, location.origin);
  for (const [key, value] of Object.entries(params || {})) if (value !== "" && value !== null) url.searchParams.set(key, value);
  const response = await fetch(url, { headers: { "X-API-Key": localStorage.getItem("gridline.apiKey") || "" } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || body.title || `HTTP ${response.status}`);
  return body;
}

function show(view) {
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${view}`;
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.view === view);
}

async function route() {
  const [, view, id] = location.hash.split("/");
  try {
    if (view === "case" && id) { show("case"); await renderCase(decodeURIComponent(id)); }
    else if (view === "dashboard") { show("dashboard"); await renderDashboard(); }
    else if (view === "map") { show("map"); await renderMap(); }
    else { show("search"); }
  } catch (error) {
    document.querySelector("#key-status").textContent = `出错：${error.message}`;
  }
}

// --- search ------------------------------------------------------------------------------------------------
async function search(more) {
  const status = document.querySelector("#search-status");
  if (!more) {
    state.params = Object.fromEntries(new FormData(document.querySelector("#search-form")));
    state.cursor = null;
    document.querySelector("#results tbody").replaceChildren();
  }
  status.textContent = "查询中…";
  try {
    const page = await api("/v1/cases", { ...state.params, limit: 30, cursor: state.cursor });
    const body = document.querySelector("#results tbody");
    for (const c of page.items) {
      const row = el("tr", { "data-case": c.case_id },
        el("td", {}, el("a", { href: `#/case/${encodeURIComponent(c.case_id)}` }, c.case_id)),
        el("td", {}, fmtTime(c.received_at)), el("td", {}, badge("status", c.status)),
        el("td", {}, (c.title || c.description || "").slice(0, 40)), el("td", {}, c.town_name || c.town_code || "—"),
        el("td", {}, c.assignee_name || "—"),
        el("td", { class: c.overdue ? "overdue-text" : "" }, c.overdue ? "已超期" : fmtTime(c.case_due_at)),
        el("td", {}, badge("card", c.card)), el("td", {}, c.escalation_level ? `${c.escalation_level} 级` : "—"));
      row.addEventListener("click", () => { location.hash = `#/case/${encodeURIComponent(c.case_id)}`; });
      body.append(row);
    }
    state.cursor = page.next_cursor;
    document.querySelector("#next-page").hidden = !page.next_cursor;
    status.textContent = `共显示 ${body.children.length} 件${page.next_cursor ? "（还有更多）" : ""}`;
  } catch (error) {
    status.textContent = `查询失败：${error.message}`;
  }
}

// --- case page ---------------------------------------------------------------------------------------------
async function renderCase(id) {
  const view = document.querySelector("#view-case");
  view.replaceChildren(el("p", {}, "加载中…"));
  const c = await api(`/v1/cases/${encodeURIComponent(id)}`);
  const facts = [
    ["状态", badge("status", c.status)], ["来源", label("source", c.source)], ["受理时间", fmtTime(c.received_at)],
    ["原始单号", c.external_id], ["地址", c.address], ["街道/镇", c.town_name || c.town_code], ["网格", c.grid_code],
    ["类别", c.category_code], ["承办单位", c.assignee_name], ["督办级别", c.escalation_level ? `${c.escalation_level} 级` : "无"],
    ["退单次数", c.return_count], ["满意度", label("satisfaction", c.satisfaction)], ["诉求人", c.citizen_name_masked],
    ["联系电话", c.citizen_phone_masked], ["办结时间", fmtTime(c.closed_at)], ["是否按时", c.on_time === null ? "—" : c.on_time ? "按时" : "超时"],
  ];
  const deadlines = Object.entries(c.deadlines).map(([stage, d]) =>
    el("tr", {}, el("td", {}, label("stage", stage)), el("td", {}, fmtTime(d.due_at)),
      el("td", {}, `${d.amount} ${d.clock === "working_days" ? "个工作日" : d.clock === "working_hours" ? "工作小时" : "小时"}`)));
  const cards = c.cards.map((card) => el("li", {}, badge("card", card.colour), ` ${label("stage", card.stage)}阶段，时限 ${fmtTime(card.due_at)}，亮牌于 ${fmtTime(card.at)}`));
  const timeline = c.timeline.map((e) => {
    const name = e.event_type.split(".")[2];
    return el("li", {}, el("time", {}, fmtTime(e.occurred_at)), el("b", {}, label("event", name)), `　操作方：${e.actor}`,
      e.data.reason ? `　原因：${e.data.reason}` : "", e.data.reply ? `　答复：${e.data.reply}` : "");
  });
  view.replaceChildren(
    el("p", {}, el("a", { href: "#/search" }, "← 返回查询")),
    el("div", { class: "case-head" }, el("h2", {}, `案件 ${c.case_id}`, c.overdue ? el("span", { class: "overdue-text" }, "（已超期）") : ""),
      el("p", {}, c.title || "", c.description), el("dl", { class: "facts" }, facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "—")]))),
    el("div", { class: "panels" },
      el("div", { class: "panel" }, el("h3", {}, "办理时限"),
        deadlines.length ? el("table", { class: "grid" }, el("thead", {}, el("tr", {}, el("th", {}, "阶段"), el("th", {}, "截止时间"), el("th", {}, "时限"))), el("tbody", {}, deadlines)) : el("p", {}, "尚未设定时限"),
        el("h3", {}, "黄牌/红牌"), cards.length ? el("ul", { id: "cards" }, cards) : el("p", {}, "未亮牌")),
      el("div", { class: "panel" }, el("h3", {}, `办理轨迹（${c.timeline.length}）`), el("ol", { class: "timeline", id: "timeline" }, timeline))),
  );
}

// --- dashboard ---------------------------------------------------------------------------------------------
async function renderDashboard() {
  const [daily, towns, departments] = await Promise.all([
    api("/v1/stats/volume", { by: "day" }), api("/v1/stats/performance", { by: "town" }),
    api("/v1/stats/performance", { by: "department" }),
  ]);
  const t = daily.total;
  document.querySelector("#tiles").replaceChildren(...[
    ["受理总量", t.received], ["在办", t.open], ["已办结", t.closed], ["按时办结率", pct(t.on_time_rate)],
    ["满意率", pct(t.satisfaction_rate)], ["退单率", pct(t.return_rate)],
    ["平均办理时长", t.avg_handling_hours === null ? "—" : `${t.avg_handling_hours.toFixed(1)} 小时`], ["红牌", t.red],
  ].map(([name, value]) => el("div", { class: "tile" }, el("b", {}, value), name)));
  columnChart(document.querySelector("#chart-daily"), daily.items.map((r) => ({ label: r.key, value: r.received })));
  const townName = (r) => r.name || TOWNS[r.key] || r.key || "未定位";
  barChart(document.querySelector("#chart-town"), towns.items.map((r) => ({ label: townName(r), value: r.received })));
  const deptName = (r) => r.key || "未派单";
  barChart(document.querySelector("#chart-ontime"), departments.items.filter((r) => r.on_time_rate !== null)
    .map((r) => ({ label: deptName(r), value: r.on_time_rate })), { max: 1, format: pct, colour: "#2e8b57" });
  barChart(document.querySelector("#chart-satisfaction"), departments.items.filter((r) => r.satisfaction_rate !== null)
    .map((r) => ({ label: deptName(r), value: r.satisfaction_rate })), { max: 1, format: pct, colour: "#d98200" });
  document.querySelector("#table-town").replaceChildren(el("table", { class: "grid" },
    el("thead", {}, el("tr", {}, ["街道/镇", "受理", "在办", "按时率", "满意率"].map((h) => el("th", {}, h)))),
    el("tbody", {}, towns.items.map((r) => el("tr", {}, el("td", {}, townName(r)), el("td", {}, r.received),
      el("td", {}, r.open), el("td", {}, pct(r.on_time_rate)), el("td", {}, pct(r.satisfaction_rate)))))));
}

// --- map ---------------------------------------------------------------------------------------------------
async function renderMap() {
  const spots = await api("/v1/stats/hotspots", { by: "grid" });
  hotspotMap(document.querySelector("#map"), spots);
  document.querySelector("#hotspots tbody").replaceChildren(...spots.map((s) =>
    el("tr", {}, el("td", {}, s.key.startsWith("cell:") ? `方格 ${s.key.slice(5)}` : s.key), el("td", {}, s.open), el("td", {}, s.overdue))));
}

// --- start -------------------------------------------------------------------------------------------------
function start() {
  const statusSelect = document.querySelector("#status-select");
  statusSelect.append(el("option", { value: "" }, "全部"), ...Object.entries(LABELS.status).map(([v, n]) => el("option", { value: v }, n)));
  const townSelect = document.querySelector("#town-select");
  townSelect.append(el("option", { value: "" }, "全部"), ...Object.entries(TOWNS).map(([v, n]) => el("option", { value: v }, n)));
  const keyInput = document.querySelector("#api-key");
  keyInput.value = localStorage.getItem("gridline.apiKey") || "";
  document.querySelector("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem("gridline.apiKey", keyInput.value.trim());
    document.querySelector("#key-status").textContent = "已保存";
    route();
  });
  document.querySelector("#search-form").addEventListener("submit", (event) => { event.preventDefault(); search(false); });
  document.querySelector("#next-page").addEventListener("click", () => search(true));
  window.addEventListener("hashchange", route);
  route();
}
start();
