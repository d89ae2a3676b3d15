"""Every dialog the product has, in one registry (used by the app and the diagram tool)."""

from __future__ import annotations

from dialogs.certify import certify
from dialogs.engine import DialogRegistry
from dialogs.family import family
from dialogs.guided import GUIDED_DIALOGS
from dialogs.menu import menu, offer_person
from dialogs.reminders import reminders


def all_dialogs() -> DialogRegistry:
    """A registry holding every dialog."""
    registry = DialogRegistry()
    for dialog in (menu, offer_person, certify, family, reminders, *GUIDED_DIALOGS):
        registry.add(dialog)
    return registry
