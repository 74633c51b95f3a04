"""The tenant's quota row (created by revision 0001, grown by 0103) and the
usage the quota reads return."""

from __future__ import annotations

import dataclasses

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel

from services.control.config import QuotaLimits


class TenantQuota(SQLModel, table=True):
    """One row per tenant: the row admission and storage writes lock; today's
    debits and what the tenant stores."""

    __tablename__ = "tenant_quotas"

    tenant: str = Field(primary_key=True, max_length=64)
    day: str = Field(max_length=10)  # UTC YYYY-MM-DD the daily debits belong to
    cpu_seconds_debited: float = 0.0
    # Added by revision 0103.
    slot_seconds_debited: float = 0.0
    stored_executions: int = Field(default=0, sa_type=BigInteger)
    stored_output_bytes: int = Field(default=0, sa_type=BigInteger)
    stored_artifacts: int = Field(default=0, sa_type=BigInteger)
    stored_artifact_bytes: int = Field(default=0, sa_type=BigInteger)


@dataclasses.dataclass(frozen=True)
class Stored:
    """What a tenant stores, as counted in its quota row."""

    executions: int = 0
    output_bytes: int = 0
    artifacts: int = 0
    artifact_bytes: int = 0

    @classmethod
    def of(cls, quota: TenantQuota | None) -> Stored:
        if quota is None:
            return cls()
        return cls(
            quota.stored_executions, quota.stored_output_bytes, quota.stored_artifacts, quota.stored_artifact_bytes
        )


@dataclasses.dataclass(frozen=True)
class QuotaUsage:
    tenant: str
    limits: QuotaLimits
    in_flight: int
    cpu_seconds_used: float
    day: str
    slot_seconds_used: float = 0.0
    slots_held: int = 0
    stored: Stored = Stored()
