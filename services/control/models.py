"""The model registry: every table of control in one SQLModel metadata.

Alembic (migrations/env.py) and the schema test import `metadata` from here;
a table defined anywhere else would be missing from both.
"""

from __future__ import annotations

from sqlmodel import SQLModel

from services.control.artifacts import models as artifact_models
from services.control.executions import models as execution_models
from services.control.quotas import models as quota_models
from services.control.runs import models as run_models
from services.control.sessions import models as session_models

metadata = SQLModel.metadata

# The modules whose import registers the tables in `metadata`.
MODEL_MODULES = (quota_models, execution_models, artifact_models, run_models, session_models)
