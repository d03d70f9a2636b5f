// Simplified Chinese labels for codes the API returns.
"use strict";
const LABELS = {
  status: {
    unknown: "待补全", received: "已受理", triage: "待分拨", assigned: "已派单", accepted: "已签收",
    returned: "已退单", transferred: "已转办", replied: "已答复", reopened: "重办", closed: "已办结",
    withdrawn: "已撤诉", duplicate: "重复件",
  },
  source: { hotline: "12345热线", grid: "网格员上报", open311: "Open311" },
  card: { yellow: "黄牌", red: "红牌" },
  stage: { sign_for: "签收", return_window: "退单时限", reply: "答复", case: "办结" },
  satisfaction: { satisfied: "满意", basically_satisfied: "基本满意", dissatisfied: "不满意" },
  event: {
    received: "受理", "duplicate-linked": "关联重复件", "appeal-updated": "补充诉求", "appeal-withdrawn": "撤诉",
    "feedback-received": "回访评价", closed: "办结", reopened: "重办", assigned: "派单",
    "sent-to-triage": "转人工分拨", "assignment-accepted": "签收", "assignment-returned": "退单",
    transferred: "转办", "reply-submitted": "答复", "extension-requested": "延期申请",
    "extension-decided": "延期审批", "deadline-set": "设定时限", "deadline-approaching": "黄牌预警",
    "deadline-breached": "红牌超期", escalated: "督办升级", "clock-paused": "计时暂停",
    "clock-resumed": "计时恢复", "notification-sent": "通知已发送", "notification-failed": "通知失败",
  },
};
const TOWNS = {
  "370114001000": "明水街道", "370114002000": "双山街道", "370114003000": "枣园街道", "370114004000": "龙山街道",
  "370114005000": "埠村街道", "370114006000": "圣井街道", "370114007000": "普集街道", "370114008000": "绣惠街道",
  "370114009000": "相公庄街道", "370114010000": "文祖街道", "370114011000": "官庄街道", "370114012000": "高官寨街道",
  "370114013000": "白云湖街道", "370114014000": "宁家埠街道", "370114015000": "曹范街道", "370114016000": "刁镇街道",
  "370114017000": "黄河街道", "370114101000": "垛庄镇",
};
// Zhangqiu district bounding box, WGS84 (derived from the DataV boundary; see docs/projection.md).
const DISTRICT_BBOX = { minLon: 117.17669, minLat: 36.4337, maxLon: 117.74124, maxLat: 37.07571 };

function label(kind, code) {
  if (code === null || code === undefined || code === "") return "—";
  return (LABELS[kind] && LABELS[kind][code]) || code;
}
