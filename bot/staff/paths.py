"""Path patterns the staff routes share: a case's pages (``CASE``) and its JSON API (``API_CASE``).

Kept apart from the handlers so that ``pages``, ``api`` and ``dashboard`` can all import them.
"""

CASE = r"/staff/cases/{case_id:\d+}"
API_CASE = r"/api/staff/cases/{case_id:\d+}"
