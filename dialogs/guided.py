"""All guided certification dialogs, in one tuple for ``dialogs.catalog``."""

from __future__ import annotations

from dialogs import app_guides, cert_failed, choose_method, home_visit, missed_deadline, offline, status_query
from dialogs.engine import Dialog

GUIDED_DIALOGS: tuple[Dialog, ...] = (
    *choose_method.DIALOGS,
    *app_guides.DIALOGS,
    *offline.DIALOGS,
    *home_visit.DIALOGS,
    *cert_failed.DIALOGS,
    *missed_deadline.DIALOGS,
    *status_query.DIALOGS,
)
