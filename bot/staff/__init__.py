"""The staff console: logins, the live queue, case work.

``web`` (``setup`` mounts the ``routes`` of ``pages``, ``api`` and ``dashboard``) ·
``pages`` (HTML pages and fragments) · ``api`` (JSON API) · ``paths`` (their shared path patterns) ·
``guards`` (sessions, CSRF, same-site checks) · ``render`` (pure HTML, ``templates/``) ·
``dashboard`` (the agency's figures) · ``desk`` (case work) · ``auth`` (accounts, sessions) · ``review`` (face evidence in words).
"""
