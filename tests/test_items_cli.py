"""``monitor items add|remove``: tomlkit edits that keep comments and layout, validated,
written atomically."""

from __future__ import annotations

import difflib
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.cli.items import add_item, remove_item
from monitor.errors import ConfigError
from monitor.watchlist.load import load_watchlist
from tests.test_watchlist import EXAMPLE

ROBE, PYJAMAS, SEASONAL = 652702302959, 859086919394, 714582004178
#: The variables the example file's targets need. Loading a watchlist registers
#: their values as secrets for the whole process, so they are made unlike any
#: text other tests look for in logs.
EXAMPLE_ENV = {
    "SLACK_TOKEN_A": "T0ITEMSTESTA",
    "SLACK_TOKEN_B": "B0ITEMSTESTB",
    "SLACK_TOKEN_C": "itemstestwebhooktokenvalueC",
    "SMTP_USER": "items-test-smtp-user",
    "SMTP_PASS": "items-test-smtp-password",
    "TELEGRAM_BOT_TOKEN": "123456789:AAitemsTestTelegramBotTokenValue1",
    "TELEGRAM_CHAT_ID": "987612345",
}


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "watchlist.toml"
    path.write_bytes(EXAMPLE.read_bytes())
    return path


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env or EXAMPLE_ENV, catch_exceptions=False)


def diff(before: str, after: str) -> list[str]:
    """The changed lines, ``+`` or ``-`` first."""
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [line for line in lines if line[:1] in "+-" and line[:3] not in ("+++", "---")]


def test_add_appends_an_entry_and_changes_nothing_else(example: Path) -> None:
    before = example.read_text(encoding="utf-8")
    result = run(
        "items",
        "add",
        "610947572360",
        "--name",
        "Khaki set",
        "--interval",
        "2h",
        "--watchlist",
        str(example),
    )
    assert result.exit_code == 0, result.output
    assert result.output == f'{example}: added item 610947572360 "Khaki set"\n'
    after = example.read_text(encoding="utf-8")
    assert diff(before, after) == [
        "+",
        "+[[items]]",
        "+id = 610947572360",
        '+name = "Khaki set"',
        '+interval = "2h"',
    ]
    loaded = load_watchlist(example, env=EXAMPLE_ENV)
    added = loaded.items[-1]
    assert (added.id, added.name, added.rules.interval.total_seconds()) == (
        610947572360,
        "Khaki set",
        7200,
    )


def test_add_takes_an_offer_url_and_refuses_duplicates(example: Path) -> None:
    result = run(
        "items",
        "add",
        "https://detail.1688.com/offer/610947572360.html?spm=a2615",
        "--watchlist",
        str(example),
    )
    assert result.exit_code == 0, result.output
    assert "id = 610947572360\n" in example.read_text(encoding="utf-8")

    before = example.read_bytes()
    inode = example.stat().st_ino
    # The pyjamas are listed by URL; adding them by number is still a duplicate.
    again = run("items", "add", str(PYJAMAS), "--watchlist", str(example))
    assert again.exit_code == 1
    assert again.output == (
        f"error: item {PYJAMAS} is already in the watchlist: "
        'items[1] ("Satin pyjamas, yellow leopard only")\n'
    )
    assert example.read_bytes() == before and example.stat().st_ino == inode


def test_remove_takes_the_entry_and_its_comments_only(example: Path) -> None:
    before = example.read_text(encoding="utf-8")
    result = run(
        "items",
        "remove",
        f"https://detail.1688.com/offer/{PYJAMAS}.html",
        "--watchlist",
        str(example),
    )
    assert result.exit_code == 0, result.output
    assert result.output == (
        f'{example}: removed item {PYJAMAS} "Satin pyjamas, yellow leopard only"\n'
    )
    entry = before[before.index('[[items]]\nid = "https://') : before.index("[[items]]\nid = 714")]
    assert entry.count("\n") == 13 and entry.endswith('cooldown = "6h"\n\n')
    assert example.read_text(encoding="utf-8") == before.replace(entry, "", 1)
    assert [item.id for item in load_watchlist(example, env=EXAMPLE_ENV).items] == [ROBE, SEASONAL]


def test_remove_of_an_unlisted_item_fails(example: Path) -> None:
    result = run("items", "remove", "123", "--watchlist", str(example))
    assert result.exit_code == 1
    assert result.output == "error: item 123 is not in the watchlist\n"


COMMENTED = """\
# my watchlist
[defaults]
interval = "1h"

# The offers.
[[items]]
id = 1
name = "one"  # trailing comment
# under one

# about two
[[items]]
id = 2

# about three
[[items]]
id = 3

# settings follow
[settings]
jitter = 0.2
"""


@pytest.mark.parametrize(
    ("item_id", "expected"),
    [
        (
            1,
            '# my watchlist\n[defaults]\ninterval = "1h"\n\n# The offers.\n'
            "# about two\n[[items]]\nid = 2\n\n# about three\n[[items]]\nid = 3\n\n"
            "# settings follow\n[settings]\njitter = 0.2\n",
        ),
        (
            2,
            '# my watchlist\n[defaults]\ninterval = "1h"\n\n# The offers.\n[[items]]\nid = 1\n'
            'name = "one"  # trailing comment\n# under one\n\n# about three\n[[items]]\nid = 3\n\n'
            "# settings follow\n[settings]\njitter = 0.2\n",
        ),
        (
            3,
            '# my watchlist\n[defaults]\ninterval = "1h"\n\n# The offers.\n[[items]]\nid = 1\n'
            'name = "one"  # trailing comment\n# under one\n\n# about two\n[[items]]\nid = 2\n\n'
            "# settings follow\n[settings]\njitter = 0.2\n",
        ),
    ],
)
def test_remove_keeps_the_comments_of_the_other_entries(item_id: int, expected: str) -> None:
    after, _ = remove_item(COMMENTED, item_id)
    assert after == expected


def test_add_goes_before_what_follows_the_list() -> None:
    after = add_item(COMMENTED, 4, name="four")
    assert after.endswith(
        '# about three\n[[items]]\nid = 3\n\n[[items]]\nid = 4\nname = "four"\n\n'
        "# settings follow\n[settings]\njitter = 0.2\n"
    )
    assert after.startswith(COMMENTED.split("# settings follow", maxsplit=1)[0].rstrip("\n"))


def test_removing_every_entry_removes_the_list() -> None:
    text = COMMENTED
    for item_id in (1, 2, 3):
        text, _ = remove_item(text, item_id)
    assert "[[items]]" not in text and "items" not in text.replace("# about", "")
    assert text.endswith("[settings]\njitter = 0.2\n")
    assert add_item(text, 7).endswith("jitter = 0.2\n\n[[items]]\nid = 7\n")


def test_inline_item_lists_are_edited_too() -> None:
    text = "items = [{id = 1}]  # inline\n"
    added = add_item(text, 2, name="two")
    assert added == 'items = [{id = 1}, {id = 2, name = "two"}]  # inline\n'
    assert remove_item(added, 1) == ('items = [{id = 2, name = "two"}]  # inline\n', None)
    with pytest.raises(ConfigError, match="already in the watchlist"):
        add_item(text, 1)


def test_an_edit_that_makes_the_file_invalid_is_refused(example: Path) -> None:
    before = example.read_bytes()
    result = run("items", "add", "610947572360", "--name", " ", "--watchlist", str(example))
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "error: the edit would leave the watchlist invalid; nothing was written:",
        f"{example}: items[3] (id 610947572360): name: must not be empty",
    ]
    assert example.read_bytes() == before


def test_a_file_already_invalid_is_not_written(example: Path) -> None:
    before = example.read_bytes()
    env = {key: value for key, value in EXAMPLE_ENV.items() if key != "SMTP_PASS"}
    result = run("items", "add", "610947572360", "--watchlist", str(example), env=env)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == (
        "error: the watchlist is invalid (already before this edit); nothing was written:"
    )
    assert "SMTP_PASS" in lines[1]
    assert example.read_bytes() == before


def test_bad_interval_is_a_usage_error(example: Path) -> None:
    result = run("items", "add", "610947572360", "--interval", "10x", "--watchlist", str(example))
    assert result.exit_code == 2
    assert '"10x" is not a duration' in result.output


def test_short_interval_warning_is_shown(example: Path) -> None:
    result = run("items", "add", "610947572360", "--interval", "20s", "--watchlist", str(example))
    assert result.exit_code == 0, result.output
    assert "warning: " in result.stderr and "20s is under a minute" in result.stderr


def test_write_is_atomic_keeps_permissions_and_follows_links(tmp_path: Path) -> None:
    real = tmp_path / "config" / "watchlist.toml"
    real.parent.mkdir()
    real.write_text("# mine\n[[items]]\nid = 1\n", encoding="utf-8")
    real.chmod(0o640)
    link = tmp_path / "watchlist.toml"
    link.symlink_to(real)
    inode = real.stat().st_ino

    result = run("items", "add", "2", "--watchlist", str(link), env={})
    assert result.exit_code == 0, result.output

    assert link.is_symlink()
    assert real.read_text(encoding="utf-8") == "# mine\n[[items]]\nid = 1\n\n[[items]]\nid = 2\n"
    assert real.stat().st_ino != inode  # replaced, not rewritten in place
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(os.listdir(real.parent)) == ["watchlist.toml"]


def test_a_missing_file_is_created_and_a_bom_is_kept(tmp_path: Path) -> None:
    fresh = tmp_path / "new.toml"
    result = run("items", "add", "5", "--name", "five", "--watchlist", str(fresh), env={})
    assert result.exit_code == 0, result.output
    assert result.stdout == f'created {fresh}: added item 5 "five"\n'
    assert [item.id for item in load_watchlist(fresh, env={}).items] == [5]
    assert fresh.read_text(encoding="utf-8").startswith("# 1688 Monitor watchlist")

    bom = tmp_path / "bom.toml"
    bom.write_bytes("\ufeff[[items]]\nid = 1\n".encode())
    assert run("items", "remove", "1", "--watchlist", str(bom), env={}).exit_code == 0
    assert run("items", "add", "3", "--watchlist", str(bom), env={}).exit_code == 0
    assert bom.read_bytes() == "\ufeff[[items]]\nid = 3\n".encode()

    missing = run("items", "remove", "1", "--watchlist", str(tmp_path / "nope.toml"), env={})
    assert missing.exit_code == 1
    assert "nope.toml: file not found" in missing.output
