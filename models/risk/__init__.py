"""Spatial risk zones: dangerous buildings, curtain walls, river pressure, grid.

Pure rules live in :mod:`~models.risk.scoring`, :mod:`~models.risk.network`
and :mod:`~models.risk.hotspot`; the PostGIS side in :mod:`~models.risk.zones`,
:mod:`~models.risk.rivers` and :mod:`~models.risk.grid`; running and the
incremental design in :mod:`~models.risk.service`.
"""

from models.risk.service import (
    KINDS,
    RiskBusy,
    RunReport,
    UnknownRiskKind,
    compute,
    refresh,
    status,
)
from models.risk.settings import RiskSettings

__all__ = ["KINDS", "RiskBusy", "RiskSettings", "RunReport", "UnknownRiskKind",
           "compute", "refresh", "status"]
