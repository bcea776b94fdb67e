"""docs/events.md is generated from the event models (core.eventdocs): it may not go stale."""

from __future__ import annotations

from core import eventdocs


def test_events_md_is_what_the_models_say() -> None:
    assert eventdocs.DOC.read_text() == eventdocs.render(), "docs/events.md is stale: run `python -m core.eventdocs`"


def test_every_kind_has_a_section_and_documented_fields() -> None:
    text = eventdocs.render()
    for kind, cls in eventdocs.events.KINDS.items():
        assert f"[`{kind}`]" in text
        for name, info in cls.model_fields.items():
            assert info.description, f"{cls.__name__}.{name} has no description"
