"""Guided flows as declarative state tables (see ``dialogs/engine.py``)."""
