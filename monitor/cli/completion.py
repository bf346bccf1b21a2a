"""``monitor completion SHELL``: print the shell completion script (click's own)."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

__all__ = ["COMPLETE_VAR", "completion"]

#: The environment variable click's completion protocol uses for ``monitor``.
COMPLETE_VAR = "_MONITOR_COMPLETE"
SHELLS = ("bash", "zsh", "fish")


@click.command(short_help="Print the shell completion script.")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL: commands, options and choices complete on Tab.

    Load it in your shell's start-up file; the script calls `monitor` back
    for each completion, so it follows upgrades by itself.

    \b
    Examples:
      # ~/.bashrc
      eval "$(_MONITOR_COMPLETE=bash_source monitor)"
      # ~/.zshrc
      eval "$(_MONITOR_COMPLETE=zsh_source monitor)"
      # fish
      _MONITOR_COMPLETE=fish_source monitor > ~/.config/fish/completions/monitor.fish
      # or, the same scripts:
      monitor completion bash > ~/.local/share/bash-completion/completions/monitor
    """
    root = ctx.find_root()
    cls = get_completion_class(shell)
    if cls is None:  # every choice is a shell click knows
        raise click.UsageError(f"no completion support for {shell}")
    script = cls(root.command, {}, root.info_name or "monitor", COMPLETE_VAR).source()
    click.echo(script)
