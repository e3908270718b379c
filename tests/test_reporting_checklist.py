"""The reporting-checklist map (book/reporting_checklist.yaml): both checklists complete,
item numbers unique, and every section it points to a real heading of a real chapter.
Reads files only; no notebook runs."""

from __future__ import annotations

import re

import pytest
import yaml

from stroke_lib.paths import REPO_ROOT

CHECKLIST = REPO_ROOT / "book" / "reporting_checklist.yaml"
NOTEBOOKS = REPO_ROOT / "notebooks"

#: CLAIM 2024 (Tejani et al., Radiol Artif Intell 2024): items 1 to 44.
CLAIM_ITEMS = [str(i) for i in range(1, 45)]

#: TRIPOD+AI (Collins et al., BMJ 2024): 27 main items, 52 entries once the sub-items
#: (3a-3c, 5a-5b, 6a-6c, 8a-8c, 9a-9c, 12a-12g, 18a-18f, 20a-20c, 23a-23b, 27a-27c) are
#: counted one by one.
TRIPOD_SUBITEMS = {"3": "abc", "5": "ab", "6": "abc", "8": "abc", "9": "abc", "12": "abcdefg",
                   "18": "abcdef", "20": "abc", "23": "ab", "27": "abc"}
TRIPOD_ITEMS = [f"{n}{s}" for n in map(str, range(1, 28)) for s in (TRIPOD_SUBITEMS.get(n) or [""])]
TRIPOD_MAIN_ITEMS = 27
TRIPOD_ENTRIES = 52


def _headings(stem: str) -> set[str]:
    """The `# ## ` and `# ### ` section headings of notebooks/<stem>.py, as written."""
    found = set()
    for line in (NOTEBOOKS / f"{stem}.py").read_text(encoding="utf-8").splitlines():
        match = re.match(r"# #{2,3} (.+)$", line)
        if match:
            found.add(match.group(1).rstrip())
    return found


@pytest.fixture(scope="module")
def checklists() -> dict[str, list[dict]]:
    data = yaml.safe_load(CHECKLIST.read_text(encoding="utf-8"))
    return {c["name"]: c for c in data["checklists"]}


def test_both_checklists_present_with_sources(checklists):
    assert set(checklists) == {"CLAIM 2024", "TRIPOD+AI"}
    assert "10.1148/ryai.240300" in checklists["CLAIM 2024"]["source"]
    assert "10.1136/bmj-2023-078378" in checklists["TRIPOD+AI"]["source"]


def test_claim_has_its_44_items_once_each(checklists):
    numbers = [str(i["item"]) for i in checklists["CLAIM 2024"]["items"]]
    assert len(numbers) == 44
    assert len(set(numbers)) == len(numbers)
    assert numbers == CLAIM_ITEMS


def test_tripod_ai_has_its_52_entries_once_each(checklists):
    numbers = [str(i["item"]) for i in checklists["TRIPOD+AI"]["items"]]
    assert len(TRIPOD_ITEMS) == TRIPOD_ENTRIES
    assert len(numbers) == TRIPOD_ENTRIES
    assert len(set(numbers)) == len(numbers)
    assert numbers == TRIPOD_ITEMS
    assert len({re.match(r"\d+", n).group() for n in numbers}) == TRIPOD_MAIN_ITEMS


@pytest.mark.parametrize("name", ["CLAIM 2024", "TRIPOD+AI"])
def test_every_item_has_a_topic_and_a_note_or_a_reason(checklists, name):
    for item in checklists[name]["items"]:
        label = f"{name} item {item['item']}"
        assert isinstance(item.get("topic"), str) and item["topic"].strip(), f"{label}: no topic"
        covered = item.get("covered")
        assert isinstance(covered, list), f"{label}: `covered` must be a list (empty when not covered)"
        if covered:
            assert isinstance(item.get("note"), str) and item["note"].strip(), f"{label}: covered without a note"
            assert "why" not in item, f"{label}: covered, so it needs a note, not a why"
        else:
            assert isinstance(item.get("why"), str) and item["why"].strip(), f"{label}: not covered, and no why"
            assert "note" not in item, f"{label}: not covered, so it needs a why, not a note"


@pytest.mark.parametrize("name", ["CLAIM 2024", "TRIPOD+AI"])
def test_every_section_is_a_heading_of_an_existing_chapter(checklists, name):
    headings: dict[str, set[str]] = {}
    for item in checklists[name]["items"]:
        for entry in item["covered"]:
            stem, section = str(entry["chapter"]), entry["section"]
            label = f"{name} item {item['item']}: {stem}"
            assert (NOTEBOOKS / f"{stem}.py").is_file(), f"{label}: no notebooks/{stem}.py"
            if stem not in headings:
                headings[stem] = _headings(stem)
            assert section in headings[stem], f"{label}: no heading {section!r}"
