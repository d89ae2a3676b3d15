"""The staff console: logins, the live queue, case work.

``web`` (routes, ``setup``) · ``pages`` (HTML pages and fragments) · ``api`` (JSON API) ·
``guards`` (sessions, CSRF, same-site checks) · ``render`` (pure HTML, ``templates/``) ·
``dashboard`` (the agency's figures) · ``desk`` (case work) · ``auth`` (accounts, sessions) · ``review`` (face evidence in words).
"""
