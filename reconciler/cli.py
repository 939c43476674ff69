"""The `ocpi-parties` command line. Each command parses its options and calls one plain function."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from reconciler import __version__, report
from reconciler.errors import ExitCode, ReconcilerError
from reconciler.validate import validate_path

EXIT_CODES = """\b
Exit codes:
  0   success (validate: the files are valid; warnings do not count unless --strict)
  1   invalid input, or the command failed for the reason it prints
  2   usage error (unknown option, missing path)
  3   database unreachable, login refused, timed out, or without MaEVe's tables
  70  internal error: run again with --traceback and report it
"""


def _use_color() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _style(text: str, color: str) -> str:
    return click.style(text, fg=color)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES)
@click.version_option(__version__, prog_name="ocpi-parties")
@click.option("--traceback", is_flag=True, help="Show the full traceback of an unexpected error.")
def cli(traceback: bool) -> None:
    """Manage the OCPI parties of a MaEVe CSMS from YAML files in git."""


@cli.command(epilog=EXIT_CODES)
@click.argument("path", default="parties", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="text: file:line:col: $.path: message; json: a stable document; github: inline annotations.",
)
@click.option("--strict", is_flag=True, help="Treat warnings (such as lower-case codes) as errors.")
def validate(path: Path, output_format: str, strict: bool) -> None:
    """Check the party files in PATH (default: parties/) without touching any database.

    Every problem in every file is reported before the command exits.
    """
    result = validate_path(path, str(path))
    if output_format == "json":
        click.echo(report.render_json(result, strict=strict))
    elif output_format == "github":
        click.echo(report.render_github(result, strict=strict))
    else:
        color = _use_color()
        text = report.render_text(result, strict=strict, style=_style if color else report._plain)
        click.echo(text, color=color)
    invalid = bool(result.errors) or (strict and bool(result.warnings))
    sys.exit(ExitCode.INVALID if invalid else ExitCode.OK)


def main(args: Sequence[str] | None = None, prog_name: str | None = None) -> None:
    """Entry point: runs the command and maps every failure to one line on stderr and an exit code."""
    argv = list(sys.argv[1:] if args is None else args)
    show_traceback = "--traceback" in argv
    try:
        cli.main(args=argv, prog_name=prog_name or "ocpi-parties", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as error:
        error.show()
        sys.exit(ExitCode.USAGE if isinstance(error, click.UsageError) else error.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(ExitCode.INVALID)
    except ReconcilerError as error:
        click.echo(f"error: {error.message}", err=True)
        sys.exit(error.exit_code)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, without a second error while flushing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(ExitCode.INVALID)
    except Exception as error:
        if show_traceback:
            raise
        click.echo(
            f"internal error: {type(error).__name__}: {error}\n"
            "This is a bug in ocpi-parties. Run again with --traceback and report the output.",
            err=True,
        )
        sys.exit(ExitCode.INTERNAL)
    sys.exit(ExitCode.OK)
