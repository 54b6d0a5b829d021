"""The `ai-ready` command line: a click group, one module per command group.

Errors the user can fix (bad option values, unknown names, unreadable files)
print one line on stderr and exit 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import sys
from typing import Sequence

import click

from ai_ready import __version__
from ai_ready.cli.accept import accept
from ai_ready.cli.bench import bench
from ai_ready.cli import collectives as _collectives  # noqa: F401  (registers `bench collectives`)
from ai_ready.cli import memory as _memory  # noqa: F401  (registers `bench memory` and `bench kernels`)
from ai_ready.cli import io as _io  # noqa: F401  (registers `bench io`)
from ai_ready.cli.extrapolate import extrapolate
from ai_ready.cli.info import info
from ai_ready.cli.profile import profile
from ai_ready.cli.report import report
from ai_ready.cli.systems import systems
from ai_ready.cli.train import train
from ai_ready.cli.validate import validate
from ai_ready.errors import InputError
from ai_ready.bench.io.scratch import Terminated

EXIT_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 1
#: click >= 8.2 raises this for a group called without a subcommand; older clicks print help themselves.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ai-ready")
@click.option("--quiet", "-q", is_flag=True, help="No progress display and no summary tables.")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, quiet: bool, debug: bool) -> None:
    """Measure GPU nodes and get training jobs ready for large machines."""
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet
    ctx.obj["debug"] = debug


cli.add_command(info)
cli.add_command(bench)
cli.add_command(systems)
cli.add_command(report)
cli.add_command(train)
cli.add_command(profile)
cli.add_command(validate)
cli.add_command(extrapolate)
cli.add_command(accept)


def _is_first_rank() -> bool:
    from ai_ready.env.launcher import detect_launcher

    return int(detect_launcher()["rank"]) == 0


def _one_line(message: str) -> str:
    return " ".join(message.split())


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: run the CLI and map errors to exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
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
    except Terminated:
        click.echo("ai-ready: terminated (SIGTERM); finished results were kept, scratch files removed", err=True)
        code = Terminated.exit_code
    except click.ClickException as exc:
        if debug:
            raise
        click.echo(f"ai-ready: error: {_one_line(exc.format_message())}", err=True)
        code = exc.exit_code
    except Exception as exc:
        if debug:
            raise
        click.echo(f"ai-ready: internal error: {type(exc).__name__}: {_one_line(str(exc))} "
                   "(rerun with --debug for the traceback)", err=True)
        code = EXIT_INTERNAL
    sys.exit(code if isinstance(code, int) else 0)
