"""What appeals are about: topics with each feed's own category code, appeal types and Chinese texts.

Every code is one intake classifies into its unified table (``services/intake/categories.py``; a unit test
checks it): the hotline sends its content classes (``900401``, ``劳动社保``) or 数字城管 event codes, a grid
app sends ``event:06010`` or a grid event class (``矛盾纠纷/17``), Open311 sends a service code of
intake's catalogue. The weights are **synthetic**, shaped after the usual rankings in published 12345
annual reports (urban management, property, utilities and wages on top; heating dominates the hotline in
the heating season); texts are written from templates, not taken from real appeals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HEATING = "heating"  # 15 Nov – 15 Mar (Jinan's heating season)
WINTER = "winter"  # Dec – Feb

# Appeal-type weights most topics use.
COMPLAINT = {"投诉": 0.8, "举报": 0.1, "求助": 0.1}
HELP = {"求助": 0.7, "投诉": 0.2, "咨询": 0.1}
CONSULT = {"咨询": 0.85, "求助": 0.15}


@dataclass(frozen=True)
class Topic:
    """One kind of appeal as each feed reports it."""

    key: str
    weights: dict[str, float]  # relative weight per source: hotline, grid, open311
    hotline_code: str | None = None
    grid_code: str | None = None
    open311_code: str | None = None
    appeal_types: dict[str, float] = field(default_factory=lambda: dict(COMPLAINT))
    citizen_texts: tuple[str, ...] = ()  # placeholders: {where} {road} {time} {days}
    grid_texts: tuple[str, ...] = ()
    replies: tuple[str, ...] = ("经核实，已安排工作人员现场处理完毕，感谢您的监督。",)
    season: str | None = None  # weight ×4 in season, ×0.15 out of it
    open311_attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # code -> keys
    urgent_share: float = 0.03


TOPICS: tuple[Topic, ...] = (
    Topic(
        "streetlight", {"hotline": 4, "grid": 3, "open311": 3}, "01037", "event:01037", "01037",
        appeal_types={"投诉": 0.5, "求助": 0.5},
        citizen_texts=(
            "{where}的路灯不亮已经{days}了，晚上行人很不安全，希望尽快修好。",
            "{where}一排路灯白天也亮着，太浪费电了。",
            "{where}路灯忽明忽暗，灯杆有点歪，怕倒下来砸到人。",
        ),
        grid_texts=("巡查发现{where}路灯不亮，共{n}盏。", "{where}路灯灯杆倾斜，存在安全隐患。"),
        replies=("已联系路灯维护单位更换灯具，现已恢复照明。", "经查为线路老化，已完成抢修。"),
        open311_attributes={"lamp_state": ("dark", "day_on", "flicker", "damaged")},
    ),
    Topic(
        "manhole", {"hotline": 2, "grid": 2, "open311": 2}, "01023", "event:01023", "01023",
        appeal_types={"投诉": 0.4, "求助": 0.6},
        citizen_texts=(
            "{where}人行道上井盖丢了，黑乎乎一个洞，很危险！",
            "{where}井盖下沉，车辆经过响声很大。",
        ),
        grid_texts=("{where}井盖缺失，已设置临时警示，请相关单位尽快补装。",),
        replies=("已通知产权单位补装井盖并做好警示。",),
        open311_attributes={"hazard": ("missing", "broken", "sunken", "noisy")},
        urgent_share=0.25,
    ),
    Topic(
        "garbage", {"hotline": 5, "grid": 8, "open311": 3}, "06010", "event:06010", "06010",
        citizen_texts=(
            "{where}路边垃圾堆了好几天没人清理，味道很大。",
            "{where}绿化带里全是垃圾，影响环境。",
        ),
        grid_texts=("{where}发现暴露垃圾约{n}平方米。", "{where}路边有生活垃圾堆放。"),
        replies=("已安排环卫作业人员清理完毕，并加强该路段巡查保洁。",),
    ),
    Topic(
        "road_damage", {"hotline": 4, "grid": 3, "open311": 3}, "06013", "event:06013", "06013",
        citizen_texts=(
            "{where}路面坑坑洼洼，下雨天全是积水，电动车经过容易摔倒。",
            "{where}路面塌陷了一块。",
        ),
        grid_texts=("{where}道路破损，坑洼面积约{n}平方米。",),
        replies=("已纳入道路维修计划，坑槽已临时修补。",),
        urgent_share=0.08,
    ),
    Topic(
        "fumes", {"hotline": 3, "grid": 2, "open311": 1}, "06027", "event:06027", "06027",
        citizen_texts=(
            "{where}一家饭店油烟直排，我们楼上窗户都不敢开。",
            "{where}烧烤店油烟很大，熏得家里都是味。",
        ),
        grid_texts=("{where}餐饮店未安装油烟净化设施，油烟直排。",),
        replies=("执法人员已责令商户安装油烟净化设施并限期整改。",),
    ),
    Topic(
        "construction_noise", {"hotline": 5, "open311": 2}, "08001", None, "08001",
        citizen_texts=(
            "{where}附近工地{time}还在施工，噪音太大没法睡觉。",
            "{where}工地天天夜里打桩，老人孩子都休息不好。",
        ),
        replies=("已责令施工单位停止夜间施工，如需连续作业须办理夜间施工许可。",),
        open311_attributes={"night_work": ("yes", "no")},
    ),
    Topic(
        "vending", {"hotline": 3, "grid": 5, "open311": 1}, "09006", "event:09006", "09006",
        citizen_texts=("{where}每天早上都有商贩占道摆摊，人行道根本走不了。",),
        grid_texts=("{where}有流动摊贩占道经营，已劝离。", "{where}店外经营占用人行道。"),
        replies=("城管执法人员已对占道经营行为进行劝导整治。",),
    ),
    Topic(
        "parking", {"hotline": 5, "grid": 3, "open311": 3}, "09009", "event:09009", "09009",
        citizen_texts=("{where}天天有车停在人行道和盲道上。", "{where}小区门口乱停车，消防车都进不来。"),
        grid_texts=("{where}机动车乱停放，占用人行道。",),
        replies=("交警已对违停车辆依法处理，并将加强巡逻。",),
        open311_attributes={},
    ),
    Topic(
        "living_noise", {"hotline": 5, "grid": 1}, "900101", "event:06028",
        citizen_texts=(
            "{where}楼上邻居{time}还在装修，电钻声音太大。",
            "{where}广场舞音响声音太大，{time}还不停。",
        ),
        grid_texts=("接居民反映{where}夜间噪声扰民，已上门沟通。",),
        replies=("社区已上门协调，双方达成一致，噪声问题已解决。",),
    ),
    Topic(
        "bins", {"hotline": 3, "grid": 5}, "06042", "event:06042",
        citizen_texts=("{where}垃圾桶满了好几天没人清运，苍蝇很多。",),
        grid_texts=("{where}垃圾箱满溢，需及时清运。",),
        replies=("已增加该点位清运频次。",),
    ),
    Topic(
        "ads", {"hotline": 1, "grid": 5}, "07001", "event:07001",
        citizen_texts=("{where}楼道里贴满了小广告，清理了又贴。",),
        grid_texts=("{where}墙面张贴非法小广告{n}处，已清理。",),
        replies=("已组织人员清理小广告。",),
    ),
    Topic(
        "clutter", {"hotline": 1, "grid": 7}, "06036", "event:06036",
        citizen_texts=("{where}楼道里堆满了杂物，存在消防隐患。",),
        grid_texts=("{where}乱堆杂物，影响通行。", "{where}路边堆放建筑材料及杂物。"),
        replies=("已督促清理堆放物。",),
    ),
    Topic(
        "illegal_building", {"hotline": 3, "grid": 4}, "06001", "event:06001",
        appeal_types={"举报": 0.7, "投诉": 0.3},
        citizen_texts=(
            "举报{where}有人私搭乱建，在楼顶加盖彩钢房。",
            "{where}一楼住户私自扩建院墙占用公共绿地。",
        ),
        grid_texts=("{where}发现正在搭建的违章建筑，已拍照取证。",),
        replies=("执法中队已现场核查并下达限期拆除通知书。",),
    ),
    Topic(
        "heating", {"hotline": 8}, "900401", None, season=HEATING, appeal_types=HELP,
        citizen_texts=(
            "{where}小区暖气不热，室温只有{temp}度，家里有老人。",
            "{where}暖气片半截热半截凉，找物业也没人管。",
            "{where}交了取暖费但是一直不供暖。",
        ),
        replies=("供热公司已上门排查，为管道气堵，排气后室温已达标。",),
    ),
    Topic(
        "water_outage", {"hotline": 4}, "900601", None, appeal_types=HELP,
        citizen_texts=(
            "{where}从早上开始停水，没有任何通知，什么时候来水？",
            "{where}水压太低，楼上根本上不去水。",
        ),
        replies=("因管网抢修临时停水，现已恢复供水。",),
        urgent_share=0.15,
    ),
    Topic(
        "water_quality", {"hotline": 1.5}, "901302", None, appeal_types=HELP,
        citizen_texts=("{where}自来水发黄，还有异味，不敢喝。",),
        replies=("已对该区域管网冲洗并取样检测，水质合格。",),
    ),
    Topic(
        "power_outage", {"hotline": 3}, "90170311", None, appeal_types=HELP,
        citizen_texts=("{where}突然停电了，已经{hours}个小时了还没来电。",),
        replies=("供电公司已完成线路抢修，恢复供电。",),
        urgent_share=0.2,
    ),
    Topic(
        "wage_arrears", {"hotline": 6, "grid": 1.5}, "900301", "矛盾纠纷/7",
        appeal_types={"求助": 0.6, "投诉": 0.4},
        citizen_texts=(
            "我在{where}附近一个工地干活，老板拖欠工资{months}个月了，一共{amount}元。",
            "{where}一家公司拖欠我们{people}个人的工资，年底了还不给。",
        ),
        grid_texts=("{where}有{people}名务工人员反映被拖欠工资，情绪激动。",),
        replies=("劳动保障监察大队已约谈用工单位，欠薪已全部支付。", "已告知通过劳动仲裁途径维权。"),
    ),
    Topic(
        "social_security", {"hotline": 5}, "劳动社保", None, appeal_types=CONSULT,
        citizen_texts=(
            "想咨询灵活就业人员养老保险怎么缴费，在哪里办理？",
            "咨询一下退休手续需要准备哪些材料？",
        ),
        replies=("已电话告知办理流程及所需材料。",),
    ),
    Topic(
        "medical_insurance", {"hotline": 5}, "卫生计生", None, appeal_types=CONSULT,
        citizen_texts=("想咨询{town}城乡居民医保缴费的时间和地点。", "异地就医备案怎么办理？"),
        replies=("已告知可通过“爱山东”APP或到便民服务中心办理。",),
    ),
    Topic(
        "school", {"hotline": 3}, "901401", None, appeal_types=CONSULT,
        citizen_texts=("我家住{where}，孩子今年上一年级，想咨询划片在哪个学校？",),
        replies=("已告知今年的学区划分及报名时间。",),
    ),
    Topic(
        "property", {"hotline": 7, "grid": 2}, "90170105", "矛盾纠纷/4",
        citizen_texts=(
            "{where}小区物业不作为，楼道灯坏了半个月没人修。",
            "{where}物业乱收停车费，业主意见很大。",
        ),
        grid_texts=("{where}小区业主与物业因收费问题发生纠纷。",),
        replies=("住建部门已约谈物业公司，要求限期整改。",),
    ),
    Topic(
        "elevator", {"hotline": 2}, "901503", None, appeal_types=HELP,
        citizen_texts=("{where}小区电梯又坏了，住在高层的老人下不了楼。",),
        replies=("已督促物业联系维保单位修复电梯。",),
        urgent_share=0.1,
    ),
    Topic(
        "fire_lane", {"hotline": 1.5, "grid": 5}, "09012", "治安、安全隐患/8",
        appeal_types={"举报": 0.6, "投诉": 0.4},
        citizen_texts=("{where}消防通道被车辆和杂物堵死了。",),
        grid_texts=("{where}电动车楼道内充电，存在火灾隐患。", "{where}消防通道堵塞。"),
        replies=("已清理消防通道并对相关人员进行消防安全教育。",),
    ),
    Topic(
        "food_hygiene", {"hotline": 1.5, "grid": 2}, "09015", "治安、安全隐患/10",
        appeal_types={"举报": 0.7, "投诉": 0.3},
        citizen_texts=("{where}有一家无证餐馆，卫生条件很差。",),
        grid_texts=("{where}小餐饮店卫生条件差，疑似无证经营。",),
        replies=("市场监管所已现场检查并责令整改。",),
    ),
    Topic(
        "river", {"hotline": 1, "grid": 2}, "06026", "event:06026",
        citizen_texts=("{where}旁边的河沟发黑发臭，还有人往里排污水。",),
        grid_texts=("{where}河道内漂浮垃圾，水体发黑。",),
        replies=("已组织打捞河道垃圾并排查排污口。",),
    ),
    Topic(
        "dust", {"hotline": 2, "grid": 3}, "08004", "event:08004",
        citizen_texts=("{where}工地没有围挡也不洒水，扬尘很大。",),
        grid_texts=("{where}工地裸土未覆盖，扬尘污染。",),
        replies=("已责令施工单位落实扬尘防治措施。",),
    ),
    Topic(
        "village_affairs", {"hotline": 2, "grid": 3}, "901705", "矛盾纠纷/15",
        appeal_types={"投诉": 0.5, "咨询": 0.3, "举报": 0.2},
        citizen_texts=("{where}村里的补贴发放不公开，想问问标准是什么。",),
        grid_texts=("{where}村民对村务公开有意见，已记录。",),
        replies=("街道已督促村委会公开相关信息并向群众解释。",),
    ),
    Topic(
        "neighbours", {"grid": 5}, None, "矛盾纠纷/17",
        grid_texts=("{where}两户邻居因宅基地边界发生争执，已初步调解。", "{where}家庭纠纷，已上门调解。"),
        replies=("经网格员和调解员调解，双方已和解。",),
    ),
    Topic(
        "dogs", {"hotline": 2}, "90170201", None,
        citizen_texts=("{where}有人遛狗不拴绳，还不清理粪便，孩子被吓哭了。",),
        replies=("已联合社区开展文明养犬宣传和巡查。",),
    ),
    Topic(
        "praise", {"hotline": 1}, "其他", None, appeal_types={"表扬": 1.0},
        citizen_texts=("表扬{town}的工作人员，上次反映的问题很快就解决了，态度也很好。",),
        replies=("感谢您的肯定，已转达相关单位。",),
    ),
    Topic(
        "traffic_light", {"hotline": 1}, "02014", None, appeal_types={"建议": 0.8, "投诉": 0.2},
        citizen_texts=("建议在{where}路口增设红绿灯，上下学时段太危险。", "{where}红绿灯坏了，路口很乱。"),
        replies=("已将建议转交交通管理部门研究。",),
    ),
    Topic(
        "subsistence", {"hotline": 2, "grid": 1}, "901201", "民生服务/4",
        appeal_types={"求助": 0.7, "咨询": 0.3},
        citizen_texts=("我家住{where}，家里有病人，生活困难，想申请低保需要什么条件？",),
        grid_texts=("{where}独居老人行动不便，需要帮扶。",),
        replies=("已告知低保申请条件，民政所将入户核查。",),
    ),
    Topic(
        "demolition", {"hotline": 1.5}, "900503", None, appeal_types=CONSULT,
        citizen_texts=("{where}听说要拆迁，想咨询一下补偿标准。",),
        replies=("已告知目前该区域暂无征收计划。",),
    ),
    Topic(
        "snow_ice", {"hotline": 0.8, "grid": 0.6}, "10001", "event:10001", season=WINTER, appeal_types=HELP,
        citizen_texts=("{where}路面结冰很滑，已经有人摔倒了，希望撒盐除冰。",),
        grid_texts=("{where}道路积雪结冰，影响通行。",),
        replies=("已组织人员清雪除冰。",),
        urgent_share=0.1,
    ),
)  # fmt: skip

RETURN_REASONS = (
    "经核实，该事项不属于本单位职责范围，请重新派单。",
    "诉求地址不在本单位辖区，建议转属地街道办理。",
    "该问题属于物业管理范畴，请转住建部门处理。",
    "涉及多个部门职责，建议由区级层面协调。",
)
EXTENSION_REASONS = (
    "需协调多个部门联合处置，申请延期。",
    "涉及管网改造，需等待施工窗口期。",
    "需走采购程序更换设施，申请延期。",
    "当事人暂时联系不上，需要更多时间核实。",
)
FEEDBACK_COMMENTS = {
    "满意": ("处理很及时，谢谢！", "问题已经解决了。", None),
    "基本满意": ("解决了，但是时间有点长。", "态度还行，希望以后快一点。", None),
    "不满意": (
        "问题根本没有解决，只是打电话敷衍。",
        "工作人员没有到现场核实。",
        "过了几天又出现同样的问题。",
    ),
}
DUPLICATE_OPENERS = ("之前反映过的问题还没解决：", "再次反映：", "第二次打电话了，", "")


def in_season(season: str | None, month: int, day: int) -> bool:
    if season == HEATING:
        return month in (12, 1, 2) or (month == 11 and day >= 15) or (month == 3 and day <= 15)
    if season == WINTER:
        return month in (12, 1, 2)
    return True
