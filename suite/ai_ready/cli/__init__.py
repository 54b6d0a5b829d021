"""The `ai-ready` command line: a click group, one module per command group.

Errors the user can fix (bad option values, unknown names, unreadable files)
print one line on stderr and exit 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

import click
from click.utils import make_default_short_help

from ai_ready import __version__
from ai_ready import stop
from ai_ready.commands import COMMANDS
from ai_ready.commands import load as load_command
from ai_ready.errors import InputError
from ai_ready.fileio import WriteFailed

EXIT_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 1
#: click >= 8.2 raises this for a group called without a subcommand; older clicks print help themselves.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())

class LazyGroup(click.Group):
    """A click group whose commands are imported when used (click's documented lazy-loading pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context | None, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.add_command(load_command(cmd_name), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the table, so listing commands imports none of them."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names), default=0)
        rows = [(name, make_default_short_help(COMMANDS[name][3], limit) if name in COMMANDS
                 else self.commands[name].get_short_help_str(limit)) for name in names]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ai-ready")
@click.option("--quiet", "-q", is_flag=True, help="No progress display and no summary tables.")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, quiet: bool, debug: bool) -> None:
    """Measure GPU nodes and get training jobs ready for large machines."""
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet
    ctx.obj["debug"] = debug


def command(name: str) -> Any:
    """The click command ``name`` (loaded on first use)."""
    return cli.get_command(None, name)


def _is_first_rank() -> bool:
    from ai_ready.env.launcher import detect_launcher

    return int(detect_launcher()["rank"]) == 0


def _one_line(message: str) -> str:
    return " ".join(message.split())


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: run the CLI and map errors to exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    stop.reset()
    try:
        with stop.stop_on_signals():  # SIGTERM, SIGINT, SIGHUP unwind: every finally runs, children are stopped
            code = cli.main(args=args, prog_name="ai-ready", standalone_mode=False)
    except _NO_ARGS_IS_HELP as exc:  # `ai-ready bench` alone: show its help
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        code = 0
    except click.UsageError as exc:
        if debug:
            raise
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"ai-ready: error: {_one_line(exc.format_message())}{where}", err=True)
        code = EXIT_INPUT
    except InputError as exc:
        if debug:
            raise
        if _is_first_rank():  # every rank finds the same bad input; one line is enough
            click.echo(f"ai-ready: error: {_one_line(str(exc))}", err=True)
        code = EXIT_INPUT
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("ai-ready: interrupted; finished results were kept", err=True)
        code = EXIT_INTERRUPTED
    except stop.Stopped as exc:
        click.echo(f"ai-ready: stopped by {stop.signal_name(exc.signum)}; finished results were kept, scratch files "
                   "removed", err=True)
        code = exc.exit_code
    except click.ClickException as exc:
        if debug:
            raise
        click.echo(f"ai-ready: error: {_one_line(exc.format_message())}", err=True)
        code = exc.exit_code
    except WriteFailed as exc:  # a full disk, a quota, a vanished folder: which file, and what was kept instead
        if debug:
            raise
        click.echo(f"ai-ready: error: {_one_line(str(exc))}", err=True)
        code = EXIT_INTERNAL
    except Exception as exc:
        signum = stop.received()
        if signum is not None:  # a stop that a library wrapped in its own error is still a stop
            click.echo(f"ai-ready: stopped by {stop.signal_name(signum)}; finished results were kept", err=True)
            code = 128 + signum
        elif debug:
            raise
        else:
            click.echo(f"ai-ready: internal error: {type(exc).__name__}: {_one_line(str(exc))} "
                       "(rerun with --debug for the traceback)", err=True)
            code = EXIT_INTERNAL
    sys.exit(code if isinstance(code, int) else 0)
