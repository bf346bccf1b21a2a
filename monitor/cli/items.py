"""``monitor items add|remove``: edit the watchlist's ``[[items]]``, keeping the rest as written.

The file is edited with tomlkit, which keeps every comment, blank line and
key order. Comments between two entries need a rule, because tomlkit files
them under the entry above. The rule here, as people write them:

* comments directly under an entry's last key (no blank line) belong to it;
* a comment block directly above an ``[[items]]`` header belongs to that
  entry, except above the first entry, where it usually introduces the
  whole list;
* anything else between two entries stays where it is.

Removing an entry removes its own comments; adding one puts it after the
last entry, before whatever came after that entry.

The edited text is validated with :func:`monitor.watchlist.load.parse_watchlist`
before anything is written; an edit that leaves the file invalid is refused
with the problems. The file is then replaced atomically (a temporary file
in the same folder, ``fsync``, ``os.replace``), so the running daemon, which
reloads the file when it changes, never reads half of it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import tomlkit
from tomlkit.container import Container
from tomlkit.items import AoT, Array, Comment, Item, Table, Whitespace
from tomlkit.toml_document import TOMLDocument

from monitor.cli.validate import WATCHLIST_OPTION_HELP, default_watchlist
from monitor.durations import parse_duration
from monitor.errors import ConfigError
from monitor.watchlist.fields import to_item_id
from monitor.watchlist.load import parse_watchlist
from monitor.watchlist.model import WatchlistError

__all__ = ["add_item", "items", "remove_item", "write_atomically"]

_BOM = "\ufeff"
NEW_FILE_HEADER = (
    "# 1688 Monitor watchlist: which offers to watch, how often, and who to tell.\n"
    "# Every key is described in docs/watchlist.md; check edits with `monitor validate`.\n"
)


# -- locating entries and the comments around them ---------------------------------


def _entry_id(entry: Any) -> int | None:
    """The offer id of an ``[[items]]`` entry, or None if it has no valid one."""
    if not isinstance(entry, dict) or "id" not in entry:
        return None
    value = entry["id"]
    try:
        return to_item_id(value.unwrap() if isinstance(value, Item) else value)
    except ConfigError:
        return None


def _entries(doc: TOMLDocument) -> AoT | Array | None:
    found = doc.get("items")
    if found is None or isinstance(found, AoT | Array):
        return found
    raise ConfigError(
        "the watchlist's items is not a list of [[items]] tables (see monitor validate)"
    )


def _find(entries: AoT | Array | None, item_id: int) -> int | None:
    for index, entry in enumerate(entries or []):
        if _entry_id(entry) == item_id:
            return index
    return None


def _tail(item: Any) -> Container | None:
    """The container whose body ends where ``item`` ends in the file (nested tables too)."""
    if isinstance(item, AoT):
        return _tail(item[-1]) if len(item) else None
    if not isinstance(item, Table):
        return None
    container = item.value
    keyed = [value for key, value in container.body if key is not None]
    if keyed and isinstance(keyed[-1], Table | AoT):
        return _tail(keyed[-1]) or container
    return container


def _is_trivia(entry: tuple[Any, Any]) -> bool:
    return entry[0] is None and isinstance(entry[1], Comment | Whitespace)


def _between_start(container: Container) -> int:
    """Where the part of ``container`` that lies *between* it and the next thing begins:
    the first blank line after the last key (``len(body)`` if there is none)."""
    body = container.body
    start = len(body)
    while start > 0 and _is_trivia(body[start - 1]):
        start -= 1
    while start < len(body) and not isinstance(body[start][1], Whitespace):
        start += 1
    return start


def _take_between(container: Container) -> list[Item]:
    """Remove and return the between part (trivia after every key: no key index moves)."""
    body = container.body
    start = _between_start(container)
    taken = [item for _, item in body[start:]]
    del body[start:]
    return taken


def _drop_comments_above_next(container: Container) -> None:
    """Remove the comment block that ends ``container`` right above the next header,
    with the blank line before it (it described the entry being removed)."""
    body = container.body
    end = len(body)
    start = end
    while start > _between_start(container) and isinstance(body[start - 1][1], Comment):
        start -= 1
    if start < end and start > _between_start(container):
        start -= 1  # the blank line that separated the block from what is above
    del body[start:]


def _header_after(doc: TOMLDocument, aot: AoT) -> Table | None:
    """The table whose header follows the ``[[items]]`` list in the file, if any."""
    keys = [value for key, value in doc.body if key is not None]
    for index, value in enumerate(keys):
        if value is aot and index + 1 < len(keys):
            following = keys[index + 1]
            if isinstance(following, AoT):
                return following[0] if len(following) else None
            return following if isinstance(following, Table) else None
    return None


def _blank_before(doc: TOMLDocument, aot: AoT) -> bool:
    """Whether a blank line (or the start of the file) comes right before the list."""
    previous: Any = None
    for _key, value in doc.body:
        if value is aot:
            break
        previous = value
    if isinstance(previous, Table | AoT):
        tail = _tail(previous)
        previous = tail.body[-1][1] if tail is not None and tail.body else None
    return previous is None or isinstance(previous, Whitespace)


# -- the edits ---------------------------------------------------------------------


def add_item(
    text: str, item_id: int, *, name: str | None = None, interval: str | None = None
) -> str:
    """``text`` with a new ``[[items]]`` entry after the last one.

    ConfigError if ``item_id`` is already listed.
    """
    doc = tomlkit.parse(text)
    entries = _entries(doc)
    index = _find(entries, item_id)
    if index is not None:
        assert entries is not None
        existing = entries[index]
        label = f' ("{existing["name"]}")' if "name" in existing else ""
        raise ConfigError(f"item {item_id} is already in the watchlist: items[{index}]{label}")
    values: dict[str, Any] = {"id": item_id}
    if name is not None:
        values["name"] = name
    if interval is not None:
        values["interval"] = interval
    if isinstance(entries, Array):
        inline = tomlkit.inline_table()
        inline.update(values)
        entries.append(inline)
        return tomlkit.dumps(doc)
    table = tomlkit.table()
    for key, value in values.items():
        table.add(key, value)
    if isinstance(entries, AoT) and len(entries):
        last = _tail(entries[-1])
        assert last is not None
        for trivia in _take_between(last):
            table.value.append(None, trivia)
        last.append(None, tomlkit.nl())
        entries.append(table)
        return tomlkit.dumps(doc)
    if doc.as_string().strip() and not doc.as_string().endswith("\n\n"):
        (_tail(doc.body[-1][1]) or doc).append(None, tomlkit.nl())
    doc.append("items", tomlkit.aot())
    doc["items"].append(table)
    return tomlkit.dumps(doc)


def remove_item(text: str, item_id: int) -> tuple[str, str | None]:
    """``text`` without the ``[[items]]`` entry of ``item_id``, and that entry's name.

    ConfigError if ``item_id`` is not listed.
    """
    doc = tomlkit.parse(text)
    entries = _entries(doc)
    index = _find(entries, item_id)
    if entries is None or index is None:
        raise ConfigError(f"item {item_id} is not in the watchlist")
    removed = entries[index]
    name = str(removed["name"]) if "name" in removed else None
    if isinstance(entries, Array):
        del entries[index]
        return tomlkit.dumps(doc), name
    own_tail = _tail(removed)
    after = _take_between(own_tail) if own_tail is not None else []
    if index > 0:
        previous = _tail(entries[index - 1])
        assert previous is not None
        _drop_comments_above_next(previous)
        if previous.body and isinstance(previous.body[-1][1], Whitespace) and after:
            del previous.body[-1]
        for trivia in after:
            previous.append(None, trivia)
    else:
        if not _blank_before(doc, entries):
            # Keep the list's introduction directly above the (new) first entry.
            while after and isinstance(after[0], Whitespace):
                after.pop(0)
        following = entries[1] if len(entries) > 1 else _header_after(doc, entries)
        text_after = "".join(trivia.as_string() for trivia in after)
        if following is not None:
            following.trivia.indent = text_after + following.trivia.indent
        elif after:
            for trivia in after:
                doc.add(trivia)
    del entries[index]
    if not len(entries):
        del doc["items"]
    return tomlkit.dumps(doc), name


# -- reading, checking and writing the file ----------------------------------------


def _read(path: Path) -> tuple[str, bool]:
    """The file's text and whether it started with a byte order mark; an absent file
    reads as the header of a new one."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return NEW_FILE_HEADER, False
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: is not UTF-8 text (bad byte at offset {exc.start})") from None
    return (text[1:], True) if text.startswith(_BOM) else (text, False)


def _parse_toml(path: Path, text: str) -> None:
    try:
        tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _check(path: Path, before: str, after: str) -> list[str]:
    """Refuse ``after`` unless it is a valid watchlist, saying whether it was before.

    Returns the warnings the edit adds (a very short interval, …).
    """
    try:
        earlier = parse_watchlist(before, path=path).warnings
    except WatchlistError as exc:
        earlier, was_invalid = tuple(exc.problems), True
    else:
        was_invalid = False
    try:
        later = parse_watchlist(after, path=path).warnings
    except WatchlistError as exc:
        note = (
            "the watchlist is invalid (already before this edit); nothing was written:"
            if was_invalid
            else "the edit would leave the watchlist invalid; nothing was written:"
        )
        raise ConfigError("\n".join([note, *exc.problems])) from None
    return [warning for warning in later if warning not in earlier]


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step, keeping its permissions.

    A symbolic link is followed: the file it points to is replaced.
    """
    target = path.resolve() if path.is_symlink() else path
    folder = target.parent if str(target.parent) else Path(".")
    mode = target.stat().st_mode & 0o7777 if target.exists() else 0o644
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _edit(path: Path, change: Callable[[str], str]) -> str:
    """Apply ``change(text) -> text`` to the watchlist at ``path``, checked and atomically."""
    before, bom = _read(path)
    _parse_toml(path, before)
    after = change(before)
    for warning in _check(path, before, after):
        click.echo(f"warning: {warning}", err=True)
    write_atomically(path, (_BOM if bom else "") + after)
    return after


# -- the commands ------------------------------------------------------------------


class _OfferId(click.ParamType[int, Any]):
    name = "id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return to_item_id(value)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


_WATCHLIST = click.option(
    "--watchlist",
    "path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=WATCHLIST_OPTION_HELP,
)


@click.group(short_help="Add or remove watchlist items, keeping comments.")
def items() -> None:
    """Add offers to the watchlist or remove them, keeping its comments and layout.

    \b
    Examples:
      monitor items add 652702302959 --name "Leopard robe" --interval 30m
      monitor items add https://detail.1688.com/offer/652702302959.html
      monitor items remove 652702302959
    """


@items.command("add", short_help="Add an offer to the watchlist.")
@click.argument("item_id", metavar="ID", type=_OfferId())
@click.option("--name", help="A label for messages and tables.")
@click.option("--interval", help="How often to poll it (30s, 15m, 6h, 1d); default: [defaults].")
@_WATCHLIST
def add_cmd(item_id: int, name: str | None, interval: str | None, path: Path | None) -> None:
    """Add the offer ID (its number, or its 1688 offer URL) to the watchlist.

    The new [[items]] entry goes after the last one; everything else in the
    file stays as written. The result is validated first: an edit that
    would make the file invalid is refused. A running daemon picks the new
    item up within seconds.

    \b
    Examples:
      monitor items add 652702302959 --name "Leopard robe" --interval 30m
      monitor items add https://detail.1688.com/offer/859086919394.html
    """
    if interval is not None:
        try:
            parse_duration(interval)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="--interval") from None
    target = path or default_watchlist()
    created = not target.exists()
    _edit(target, lambda text: add_item(text, item_id, name=name, interval=interval))
    label = f'{item_id} "{name}"' if name else str(item_id)
    click.echo(f"{'created ' if created else ''}{target}: added item {label}")


@items.command("remove", short_help="Remove an offer from the watchlist.")
@click.argument("item_id", metavar="ID", type=_OfferId())
@_WATCHLIST
def remove_cmd(item_id: int, path: Path | None) -> None:
    """Remove the offer ID (number or offer URL) from the watchlist.

    Its entry and the comments that belong to it go. Its history stays in
    the database; a running daemon stops polling it within seconds.

    \b
    Example:
      monitor items remove 652702302959
    """
    target = path or default_watchlist()
    if not target.exists():
        raise ConfigError(f"{target}: file not found")
    removed: list[str | None] = []

    def change(text: str) -> str:
        after, name = remove_item(text, item_id)
        removed.append(name)
        return after

    _edit(target, change)
    label = f'{item_id} "{removed[0]}"' if removed and removed[0] else str(item_id)
    click.echo(f"{target}: removed item {label}")
