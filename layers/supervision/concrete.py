"""Declarations of the concrete supervision domain (feeds and layers).

Four record feeds about the ready-mixed concrete plants of the ``plants``
layer (``plant_id`` holds the plant's ``source_id``): production records
(one per delivery ticket / 生产记录), batching records at the mixer (one row
per batch and material, 生产配料), raw-material arrivals (原材料进场) and the
plant's self-test specimen groups (自检试件). The rules reading them live in
:mod:`models.supervision.concrete`.
"""

from __future__ import annotations

from layers.base import LayerSpec, Prop
from layers.feeds import FeedSpec, register_feed

#: Map layers this domain adds (none: findings sit on the ``plants`` layer).
LAYERS: tuple[LayerSpec, ...] = ()

#: Material classes of a batching record (GB/T 14902-2012 §7.4 tolerances).
BATCH_MATERIALS = ("binder", "aggregate", "water", "admixture")

#: Rows of GB 50164-2011 table 3.1.8 (the chloride limit of a mix): reinforced
#: concrete in a dry / humid (no chlorides) / chloride / de-icing-salt or sea
#: environment, prestressed concrete, plain concrete.
CHLORIDE_ENVIRONMENTS = (
    "reinforced_dry",
    "reinforced_humid",
    "reinforced_chloride",
    "reinforced_deicing",
    "prestressed",
    "plain",
)

SUBJECT = ("plants", "plant_id")

PLANT_ID = Prop(
    "plant_id",
    "text",
    "Plant id",
    "企业编号",
    aliases=("plant_id", "plant", "enterprise_id", "企业编号", "搅拌站编号"),
    indexed=True,
)
RECORD_NO = Prop(
    "record_no",
    "text",
    "Production record number",
    "生产记录编号",
    aliases=("record_no", "record", "ticket_no", "生产记录编号", "生产单号"),
)
PRODUCED_AT = Prop(
    "produced_at",
    "datetime",
    "Produced at",
    "生产时间",
    aliases=("produced_at", "production_time", "生产时间"),
    temporal=True,
)
STRENGTH_CLASS = Prop(
    "strength_class",
    "text",
    "Strength class",
    "强度等级",
    aliases=("strength_class", "grade", "强度等级"),
    description="GB/T 50010 class such as C30 (f_cu,k = 30 MPa).",
)

PRODUCTION = register_feed(
    FeedSpec(
        id="concrete_production",
        title="Concrete production records",
        title_zh="预拌混凝土生产记录",
        description=(
            "One record per production ticket: project, strength class, "
            "volume, mix ratio, batching serial number, approval and the "
            "concrete type / environment its chloride limit follows."
        ),
        columns=(
            PLANT_ID,
            RECORD_NO,
            PRODUCED_AT,
            Prop(
                "project",
                "text",
                "Project",
                "工程名称",
                aliases=("project", "project_name", "工程名称"),
            ),
            STRENGTH_CLASS,
            Prop(
                "volume_m3",
                "float",
                "Volume",
                "方量",
                unit="m3",
                aliases=("volume", "volume_m3", "方量", "生产方量"),
                non_negative=True,
            ),
            Prop(
                "mix_ratio_no",
                "text",
                "Mix ratio number",
                "配合比编号",
                aliases=("mix_ratio_no", "mix_ratio", "配合比编号"),
            ),
            Prop(
                "batching_serial",
                "text",
                "Batching serial number",
                "配料流水号",
                aliases=("batching_serial", "serial", "配料流水号"),
            ),
            Prop(
                "chloride_environment",
                "text",
                "Concrete type / environment (chloride limit)",
                "混凝土类型及环境",
                aliases=(
                    "chloride_environment",
                    "concrete_type",
                    "environment",
                    "混凝土类型",
                    "环境类别",
                ),
                choices=CHLORIDE_ENVIRONMENTS,
                description="The GB 50164-2011 table 3.1.8 row the mix's chloride "
                "limit comes from; empty: the configured default.",
            ),
            Prop(
                "approved",
                "bool",
                "Approved",
                "已审批",
                aliases=("approved", "approval", "审批", "已审批"),
            ),
        ),
        key=("plant_id", "record_no"),
        required=("produced_at",),
        domain="concrete",
        subject=SUBJECT,
    )
)

BATCHING = register_feed(
    FeedSpec(
        id="concrete_batching",
        title="Concrete batching records",
        title_zh="预拌混凝土生产配料",
        description=(
            "Target and actual weight of each material per batch at the mixer "
            "(``cumulative`` rows, under their own ``batch_no``: the running "
            "total of a production record), with the "
            "water-soluble chloride content measured for the batch (% of the "
            "cement mass, as GB 50164-2011 table 3.1.8 states its limits)."
        ),
        columns=(
            PLANT_ID,
            Prop(
                "batch_no",
                "text",
                "Batch number",
                "盘号",
                aliases=("batch_no", "batch", "盘号", "盘次"),
            ),
            RECORD_NO,
            PRODUCED_AT,
            Prop(
                "material",
                "text",
                "Material",
                "材料",
                aliases=("material", "材料", "材料类别"),
                choices=BATCH_MATERIALS,
            ),
            Prop(
                "target_kg",
                "float",
                "Target weight",
                "设定值",
                unit="kg",
                aliases=("target_kg", "target", "设定值", "理论用量"),
                non_negative=True,
            ),
            Prop(
                "actual_kg",
                "float",
                "Actual weight",
                "实际值",
                unit="kg",
                aliases=("actual_kg", "actual", "实际值", "实际用量"),
                non_negative=True,
            ),
            Prop(
                "cumulative",
                "bool",
                "Cumulative",
                "累计",
                aliases=("cumulative", "累计"),
            ),
            Prop(
                "chloride_pct",
                "float",
                "Chloride content",
                "氯离子含量",
                unit="% of cement mass",
                aliases=("chloride_pct", "chloride", "氯离子含量"),
                non_negative=True,
            ),
        ),
        key=("plant_id", "record_no", "batch_no", "material"),
        required=("target_kg", "actual_kg"),
        domain="concrete",
        subject=SUBJECT,
    )
)

MATERIALS = register_feed(
    FeedSpec(
        id="concrete_materials",
        title="Raw-material arrivals",
        title_zh="原材料进场记录",
        description=(
            "One record per delivered lot of raw material: supplier and lot, "
            "arrival and entry times, self-test, shelf life, use, and for "
            "manufactured sand the stone-powder content and MB value."
        ),
        columns=(
            PLANT_ID,
            Prop(
                "material_record_no",
                "text",
                "Material record number",
                "进场记录编号",
                aliases=("material_record_no", "record_no", "进场记录编号"),
            ),
            Prop(
                "material",
                "text",
                "Material",
                "材料名称",
                aliases=("material", "材料名称", "材料"),
                description="cement, fly_ash, slag, sand, manufactured_sand, "
                "stone, admixture, water, ...",
            ),
            Prop(
                "supplier", "text", "Supplier", "供应商", aliases=("supplier", "供应商")
            ),
            Prop(
                "batch_no",
                "text",
                "Lot number",
                "批号",
                aliases=("batch_no", "lot", "lot_no", "批号"),
            ),
            Prop(
                "quantity_kg",
                "float",
                "Quantity arrived",
                "进场数量",
                unit="kg",
                aliases=("quantity_kg", "quantity", "进场数量"),
                non_negative=True,
            ),
            Prop(
                "arrived_at",
                "datetime",
                "Arrived at",
                "进场时间",
                aliases=("arrived_at", "arrival", "进场时间"),
                temporal=True,
            ),
            Prop(
                "entered_at",
                "datetime",
                "Entered at",
                "录入时间",
                aliases=("entered_at", "entry_time", "录入时间"),
            ),
            Prop(
                "tested",
                "bool",
                "Self-tested",
                "已自检",
                aliases=("tested", "self_tested", "已自检"),
            ),
            Prop(
                "tested_at",
                "datetime",
                "Self-test reported at",
                "自检时间",
                aliases=("tested_at", "test_time", "自检时间"),
            ),
            Prop(
                "expires_on",
                "date",
                "Expires on",
                "有效期至",
                aliases=("expires_on", "expiry", "有效期至"),
            ),
            Prop(
                "first_used_at",
                "datetime",
                "First used at",
                "首次使用时间",
                aliases=("first_used_at", "首次使用时间"),
            ),
            Prop(
                "last_used_at",
                "datetime",
                "Last used at",
                "最后使用时间",
                aliases=("last_used_at", "最后使用时间"),
            ),
            Prop(
                "used_kg",
                "float",
                "Quantity used",
                "使用量",
                unit="kg",
                aliases=("used_kg", "used", "使用量"),
                non_negative=True,
            ),
            Prop(
                "stone_powder_pct",
                "float",
                "Stone-powder content",
                "石粉含量",
                unit="%",
                aliases=("stone_powder_pct", "stone_powder", "石粉含量"),
                non_negative=True,
            ),
            Prop(
                "mb_value",
                "float",
                "Methylene-blue (MB) value",
                "亚甲蓝值",
                unit="g/kg",
                aliases=("mb_value", "mb", "亚甲蓝值"),
                non_negative=True,
            ),
            Prop(
                "for_strength_class",
                "text",
                "For strength class",
                "适用强度等级",
                aliases=("for_strength_class", "适用强度等级"),
            ),
        ),
        key=("plant_id", "material_record_no"),
        required=("material", "arrived_at"),
        domain="concrete",
        subject=SUBJECT,
    )
)

SELF_TESTS = register_feed(
    FeedSpec(
        id="concrete_self_tests",
        title="Self-test specimen groups",
        title_zh="混凝土自检试件组",
        description=(
            "The plant's compressive-strength specimen groups (3 cubes each): "
            "cast and test dates and the group's representative value "
            "(GB/T 50081 §5.0.5), for the GB/T 50107 assessment."
        ),
        columns=(
            PLANT_ID,
            Prop(
                "group_no",
                "text",
                "Group number",
                "试件组编号",
                aliases=("group_no", "group", "试件组编号", "试件编号"),
            ),
            RECORD_NO,
            STRENGTH_CLASS,
            Prop(
                "cast_on",
                "date",
                "Cast on",
                "成型日期",
                aliases=("cast_on", "cast_date", "成型日期"),
                temporal=True,
            ),
            Prop(
                "tested_on",
                "date",
                "Tested on",
                "试压日期",
                aliases=("tested_on", "test_date", "试压日期"),
            ),
            Prop(
                "strength_mpa",
                "float",
                "Compressive strength (group value)",
                "抗压强度代表值",
                unit="MPa",
                aliases=("strength_mpa", "strength", "抗压强度", "强度代表值"),
                non_negative=True,
            ),
            Prop(
                "curing",
                "text",
                "Curing",
                "养护方式",
                aliases=("curing", "养护方式"),
                choices=("standard", "same_condition"),
            ),
        ),
        key=("plant_id", "group_no"),
        required=("strength_class", "cast_on"),
        domain="concrete",
        subject=SUBJECT,
    )
)

FEEDS = (PRODUCTION, BATCHING, MATERIALS, SELF_TESTS)
