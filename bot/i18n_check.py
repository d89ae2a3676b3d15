"""``make i18n-check``: missing, fuzzy and to-be-reviewed entries of each translation.

Exit status 1 when an entry is missing (no translation) or a translation drops or invents
a ``{placeholder}``; fuzzy entries and entries still marked for native review are listed
but do not fail. Also fails when the catalog is older than the code (run
``make i18n-extract i18n-update``): every text the code marks is in the template.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from bot.core.i18n import LANGUAGES, LOCALE_DIR, ZH, po_path

ROOT = LOCALE_DIR.parent

REVIEW_MARK = "needs-review"  # a translator comment on entries a native speaker has not checked
_PLACEHOLDER = re.compile(r"\{(\w*)\}")


def load(path: Path) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle)


def check(language: str, template: Catalog | None, verbose: bool) -> int:
    """Print the problems of one language's catalog; the number of failing ones."""
    path = po_path(language)
    if not path.exists():
        print(f"[{language}] no catalog at {path}")
        return 1
    catalog = load(path)
    missing, fuzzy, review, broken = [], [], [], []
    for message in catalog:
        if not message.id:
            continue
        msgid = str(message.id)
        if not message.string:
            missing.append(msgid)
            continue
        if message.fuzzy:
            fuzzy.append(msgid)
        if any(REVIEW_MARK in comment for comment in message.user_comments):
            review.append(msgid)
        if set(_PLACEHOLDER.findall(msgid)) != set(_PLACEHOLDER.findall(str(message.string))):
            broken.append(msgid)
    stale: list[str] = []
    if template is not None:
        known = {str(m.id) for m in catalog if m.id}
        stale = [str(m.id) for m in template if m.id and str(m.id) not in known]
    total = sum(1 for m in catalog if m.id)
    print(f"[{language}] {total} entries: {len(missing)} missing, {len(fuzzy)} fuzzy, "
          f"{len(broken)} with wrong placeholders, {len(stale)} not yet in the catalog, "
          f"{len(review)} awaiting native review")
    for title, items in (("missing", missing), ("wrong placeholders", broken),
                         ("not in the catalog (run make i18n-update)", stale), ("fuzzy", fuzzy)):
        for msgid in items:
            print(f"  {title}: {msgid[:80]!r}")
    if verbose:
        for msgid in review:
            print(f"  review: {msgid[:80]!r}")
    return len(missing) + len(broken) + len(stale)


def code_texts(root: Path = ROOT) -> set[str]:
    """Every text the code and the FAQ mark for translation (as ``make i18n-extract`` finds them)."""
    with (root / "babel.cfg").open(encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    found = extract_from_dir(str(root), method_map, options_map, keywords={"tr": None}, comment_tags=())
    return {message if isinstance(message, str) else message[0] for _, _, message, _, _ in found}


def not_extracted(template: Catalog, root: Path = ROOT) -> list[str]:
    """Texts in the code that the template lacks: the catalog is older than the code."""
    known = {str(m.id) for m in template if m.id}
    return sorted(text for text in code_texts(root) if text and text not in known)


# Where a text is shown, for the translator (an extracted "#." comment on each entry).
CONTEXTS = {
    "dialogs/menu.py": "main menu", "dialogs/choose_method.py": "choosing a certification method",
    "dialogs/app_guides.py": "app walkthrough (keep app names and on-screen labels in Chinese, in quotes)",
    "dialogs/common.py": "shared dialog texts (yes/no, walkthrough steps, ID number)",
    "dialogs/cert_failed.py": "failure diagnosis", "dialogs/home_visit.py": "home-visit request form",
    "dialogs/status_query.py": "certification status query", "dialogs/certify.py": "certifying with a selfie",
    "dialogs/family.py": "certifying for a family member", "dialogs/offline.py": "certifying in person",
    "dialogs/missed_deadline.py": "a missed deadline", "dialogs/reminders.py": "reminder opt-in",
    "dialogs/identity.py": "ID number and name questions", "dialogs/engine.py": "any question (fallback)",
    "handlers/": "answers outside a flow (router, listening, protection)",
    "bot/records/cases.py": "handoff to a person: queue and staff messages the user reads",
    "bot/records/reminders.py": "reminder messages",
    "bot/channels/web_page.py": "web chat page: buttons, camera hints, network notes (keep short)",
    "bot/channels/": "channel messages (errors, limits)",
    "bot/core/facts.py": "facts reused in several answers (dates, office hours, places)",
    "bot/core/": "general system messages", "bot/": "general system messages",
    "face/": "selfie quality and pose advice", "faq/": "knowledge-base answer",
}


def annotate(path: Path) -> int:
    """Add a "shown in: ..." extracted comment to each entry of the template."""
    from babel.messages.pofile import write_po  # deferred: Babel is needed only for this command

    template = load(path)
    for message in template:
        if not message.id:
            continue
        places = []
        for filename, _line in message.locations:
            context = next((text for prefix, text in CONTEXTS.items() if str(filename).startswith(prefix)), None)
            if context and context not in places:
                places.append(context)
        if places:
            message.auto_comments = [*message.auto_comments, "shown in: " + "; ".join(places)]
    with path.open("wb") as handle:
        write_po(handle, template, width=0, sort_output=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--template", type=Path, default=LOCALE_DIR / "messages.pot")
    parser.add_argument("--verbose", action="store_true", help="also list entries awaiting review")
    parser.add_argument("--annotate", action="store_true",
                        help="add 'shown in' translator comments to the template (make i18n-extract)")
    args = parser.parse_args(argv)
    if args.annotate:
        return annotate(args.template)
    template = load(args.template) if args.template.exists() else None
    failing = sum(check(language, template, args.verbose) for language in LANGUAGES if language != ZH)
    if template is not None:
        new = not_extracted(template)
        for text in new:
            print(f"  not in the template (run make i18n-extract i18n-update): {text[:80]!r}")
        failing += len(new)
    if failing:
        print(f"i18n-check: {failing} problem(s)")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
