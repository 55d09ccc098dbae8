"""Entity tags and their comparison (RFC 9110 §8.8.3).

Rules of this module:

Rule 1: an entity tag is kept as (weak, opaque-tag-with-quotes); W/ marks it weak.
Rule 2: strong comparison: both strong and opaque tags equal. Weak comparison: opaque
        tags equal, weakness ignored (RFC 9110 §8.8.3.2).
Rule 3: a member of an If-Match / If-None-Match list that is not a valid entity tag is
        skipped; "*" is reported separately by the caller.
"""

from __future__ import annotations

from .headers import split_list

__all__ = ["EntityTag", "parse_etag", "parse_etag_list", "strong_match", "weak_match"]

EntityTag = tuple[bool, str]


def parse_etag(value: str | None) -> EntityTag | None:
    """(weak, '"opaque"') for a valid entity-tag, else None."""
    if value is None:
        return None
    value = value.strip()
    weak = value.startswith("W/")
    tag = value[2:] if weak else value
    if len(tag) < 2 or tag[0] != '"' or tag[-1] != '"' or '"' in tag[1:-1]:
        return None
    return weak, tag


def parse_etag_list(values: list[str]) -> list[EntityTag]:
    """Valid entity tags in field lines of If-Match / If-None-Match."""
    tags = []
    for line in values:
        for member in split_list(line):
            tag = parse_etag(member)
            if tag is not None:
                tags.append(tag)
    return tags


def strong_match(a: EntityTag, b: EntityTag) -> bool:
    return not a[0] and not b[0] and a[1] == b[1]


def weak_match(a: EntityTag, b: EntityTag) -> bool:
    return a[1] == b[1]
