"""Readable SKU names from TMAPI ``props_names`` / ``props_ids`` + ``sku_props``.

A SKU's name is for people only (messages, reports); SKUs are identified by
id. Names are built from the property values, without the property names:
``"颜色:白色豹纹;尺码:L"`` becomes ``"白色豹纹 / L"``.
"""

from __future__ import annotations

import re
from typing import Final

from monitor.tmapi.values import as_list, as_mapping, parse_id, parse_text

#: Joins the property values of a SKU into its display name.
NAME_SEPARATOR: Final = " / "

_POSITION = re.compile(r"[0-9]{1,6}")


def _parts(text: str) -> list[str]:
    """The ``;``-separated parts of ``text``, with full-width ``；``/``：`` read as ``;``/``:``."""
    return text.replace("：", ":").replace("；", ";").split(";")


def name_from_props_names(value: object) -> str | None:
    """The display name from a ``props_names`` string, or ``None`` if it has no values.

    Accepts ``"颜色:白色豹纹;尺码:L"``, ``"白色豹纹;L"`` (no property names),
    odd spacing (``" 颜色 : 白色豹纹 ; 尺码:L "``) and full-width ``；``/``：``.
    Everything after the first colon of a part is the value.
    """
    text = parse_text(value)
    if text is None:
        return None
    values = []
    for part in _parts(text):
        _, colon, after = part.partition(":")
        name = (after if colon else part).strip()
        if name:
            values.append(name)
    return NAME_SEPARATOR.join(values) or None


class PropNames:
    """Resolves ``props_ids`` like ``"0:1;1:2"`` or ``"1627207:28320"`` against ``sku_props``.

    A ``pid:vid`` pair is looked up by the ``pid``/``vid`` fields of
    ``sku_props`` first; a pair of small numbers that matches none is read as
    positions (property index, value index). Built once per payload, so
    naming hundreds of SKUs stays linear.
    """

    __slots__ = ("_by_id", "_by_position")

    def __init__(self, sku_props: object) -> None:
        self._by_id: dict[tuple[str, str], str] = {}
        self._by_position: list[list[str | None]] = []
        for prop in as_list(sku_props):
            fields = as_mapping(prop)
            pid = parse_id(fields.get("pid"))
            row: list[str | None] = []
            for value in as_list(fields.get("values")):
                value_fields = as_mapping(value)
                name = parse_text(value_fields.get("name"))
                row.append(name)
                vid = parse_id(value_fields.get("vid"))
                if pid is not None and vid is not None and name is not None:
                    self._by_id.setdefault((pid, vid), name)
            self._by_position.append(row)

    def from_ids(self, value: object) -> str | None:
        """The display name for a ``props_ids`` string, or ``None`` if any pair is unknown."""
        text = parse_text(value)
        if text is None:
            return None
        names = []
        for part in _parts(text):
            if not part.strip():
                continue
            pid, colon, vid = part.partition(":")
            if not colon:
                return None
            name = self._lookup(pid.strip(), vid.strip())
            if name is None:
                return None
            names.append(name)
        return NAME_SEPARATOR.join(names) or None

    def _lookup(self, pid: str, vid: str) -> str | None:
        name = self._by_id.get((pid, vid))
        if name is not None or not (_POSITION.fullmatch(pid) and _POSITION.fullmatch(vid)):
            return name
        prop, value = int(pid), int(vid)
        if prop < len(self._by_position) and value < len(self._by_position[prop]):
            return self._by_position[prop][value]
        return None
