"""The ``llmbench`` command: parses options and calls the library, nothing more.

Errors funnel through ``LLMBenchGroup.invoke``: a library error becomes one line
``Error: path:line: message`` plus a hint, never a traceback. Exit codes: 0 ok,
1 some inputs could not be read (the rest is stored), 2 usage error.

Each command imports the library modules it uses when it runs (start-up:
``llmbench --help`` loads click and this module's few light imports only).
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
import time
from contextlib import contextmanager, suppress
from typing import Any

import click

from . import __version__
from .columns import RUN_COLUMNS, natural_key
from .errors import WARNING_KINDS, LLMBenchError, UsageError, storage_error
from .formats import FORMATS, relative
from .plots import KINDS, VALUE_LABELS  # names only: matplotlib loads when a figure is drawn

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_REGRESSION, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _fail(e: LLMBenchError) -> None:
    click.echo(f"Error: {e}", err=True)
    if e.remedy:
        click.echo(f"  hint: {e.remedy}", err=True)


class LLMBenchGroup(click.Group):
    """The single error funnel of the command line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as e:
            _fail(e)
            ctx.exit(EXIT_USAGE)
        except LLMBenchError as e:
            _fail(e)
            ctx.exit(EXIT_INPUT)
        except KeyboardInterrupt:
            click.echo("Interrupted: every file is either fully stored or absent.", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as e:  # a write the disk refused (a figure, an export, ...)
            fault = storage_error(e, getattr(e, "filename", None) or os.getcwd())
            if fault is None:
                raise
            _fail(fault)
            ctx.exit(EXIT_INPUT)


def workers_option(f):
    return click.option(
        "--workers",
        type=click.IntRange(1, 256),
        default=lambda: os.cpu_count() or 1,
        show_default="the machine's cores",
        help="Parse files in this many processes (one writer stores them).",
    )(f)


def columns_option(f):
    return click.option(
        "--columns",
        metavar="A,B|all",
        help="Comma-separated columns (names or headers), or 'all' [default: a summary "
        "fitted to the terminal; csv and json: all].",
    )(f)


def db_option(f):
    return click.option(
        "--db",
        type=click.Path(dir_okay=False),
        default=None,
        help="SQLite store [default: $LLMBENCH_DB or ./llmbench.db].",
    )(f)


def model_config_option(f):
    return click.option(
        "--model-config",
        type=click.Path(dir_okay=False),
        metavar="FILE.json",
        help="A Hugging Face config.json giving the model's shape (layers, heads, experts, "
        "MLA ranks, windows, hybrid layers...); a config.json beside a log is read anyway.",
    )(f)


def settings_options(f):
    f = model_config_option(f)
    f = click.option(
        "--path-pattern",
        metavar="PAT",
        help="Take settings from the path, e.g. '{dtype}/{model}/{num_gpus}/'.",
    )(f)
    f = click.option(
        "--settings",
        "settings_file",
        type=click.Path(dir_okay=False),
        metavar="FILE.toml",
        help='Settings file: top-level keys for all files, [files."glob"] tables for some.',
    )(f)
    f = click.option(
        "--set",
        "set_items",
        multiple=True,
        metavar="K=V",
        help="A value the logs lack, e.g. --set num_gpus=128 (repeatable; wins over all else). "
        "A name a letter away from a known setting is refused as a typo; other names are "
        "kept as free-form settings.",
    )(f)
    return f


@click.group(cls=LLMBenchGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="llmbench")
def cli() -> None:
    """Read LLM training logs; report step time, tokens/s, TFLOPs and MFU.

    \b
    Example:
      llmbench ingest results/          # parse every log below results/
      llmbench runs                     # what is in the store
      llmbench export --table steps --format csv -o steps.csv
    """


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@db_option
@click.option("--parser", metavar="NAME", help="Use this parser instead of detecting one.")
@settings_options
@workers_option
@click.option(
    "--engine",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Parse here, or on a Dask cluster (pip install 'llmbench[dask]').",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="With --engine dask: the cluster's scheduler, e.g. tcp://head:8786 "
    "[default: a local cluster of --workers workers]. The workers must see the "
    "logs and the store's folder at the same paths.",
)
@click.option("-v", "--verbose", is_flag=True, help="A line per file, and every warning.")
def ingest(
    paths, db, parser, set_items, settings_file, path_pattern, model_config, workers, engine,
    scheduler, verbose,
) -> None:  # fmt: skip
    """Parse log files into the store.

    PATHS are files, directories (searched recursively for .log .out .txt .err
    .md, optionally .gz/.bz2/.xz), globs, or - for standard input. Unchanged files
    are skipped; a changed file replaces its old rows.

    \b
    Example:
      llmbench ingest logs/ --path-pattern '{dtype}/{model}/{num_gpus}/' \\
          --set global_batch_size=256 --set seq_len=2048
      llmbench ingest /shared/archive --engine dask --scheduler tcp://head:8786
    """
    from .settings import Settings

    if scheduler and engine != "dask":
        raise UsageError("--scheduler needs --engine dask")
    settings = Settings.build(set_items, settings_file, path_pattern, model_config=model_config)
    report, db = _ingest(
        paths,
        db,
        parser=parser,
        settings=settings,
        workers=workers,
        verbose=verbose,
        engine=engine,
        scheduler=scheduler,
    )
    if report.failed:
        sys.exit(EXIT_INPUT)


def _ingest(
    paths,
    db,
    *,
    settings,
    workers: int,
    verbose: bool,
    parser=None,
    summary_err=False,
    engine: str = "local",
    scheduler: str | None = None,
):
    """Ingest with a progress bar and a line per failure; returns (report, db path)."""
    from .ingest import ingest as run_ingest
    from .store import default_path

    db = db or default_path()
    progress = _Progress(verbose, summary_err)
    try:
        report = run_ingest(
            paths,
            db,
            parser=parser,
            settings=settings,
            workers=workers,
            progress=progress,
            engine=engine,
            scheduler=scheduler,
        )
    finally:
        progress.close()
    click.echo(f"{report.summary()} -> {db}", err=summary_err)
    return report, db


def _progress_after() -> float:
    """Seconds of work before a progress display appears ($LLMBENCH_PROGRESS_AFTER)."""
    return float(os.environ.get("LLMBENCH_PROGRESS_AFTER") or 1.5)


class _Progress:
    """On a terminal, once an ingest has run ``_progress_after()`` seconds, a bar of
    bytes read (within a large file too) and files done; a line per failure or
    duplicate; with ``verbose`` a line per file and its warnings (and no bar)."""

    FIRST_WARNINGS = 3  # per file, without --verbose

    def __init__(self, verbose: bool, summary_err: bool) -> None:
        from .reader import bytes_read

        self.verbose, self.err = verbose, summary_err
        self.show_bar = sys.stderr.isatty() and not verbose
        self.files = self.total_files = self.done = self.total_bytes = 0
        self.sizes: dict[str, int] = {}  # bytes per path, kept only for a bar
        self.bytes_read, self.base = bytes_read, bytes_read()
        self.stop, self.thread, self.drawn = threading.Event(), None, False

    def start(self, paths: list[str]) -> None:
        self.total_files = len(paths)
        if not self.show_bar:  # no bar: no file sizes to look up
            return
        for path in paths:
            with suppress(OSError):
                self.sizes[path] = os.stat(path).st_size
        self.total_bytes = sum(self.sizes.values())
        if self.total_bytes:
            self.thread = threading.Thread(target=self._draw, name="llmbench-progress", daemon=True)
            self.thread.start()

    def _draw(self) -> None:
        if self.stop.wait(_progress_after()):
            return
        bar = click.progressbar(length=self.total_bytes, file=sys.stderr, show_eta=True)
        self.drawn, shown = True, 0
        with bar:
            while True:
                last = self.stop.is_set()  # the ingest is over: draw where it ended
                now = self.done + max(0, self.bytes_read() - self.base)  # this file so far
                at = min(now, self.total_bytes)
                bar.label = f"ingesting {self.files}/{self.total_files} files"
                bar.update(at - shown)
                bar.render_progress()  # the label, when no byte moved
                shown = at
                if last:
                    return
                self.stop.wait(0.25)

    def _say(self, text: str, err: bool = True) -> None:
        if self.drawn:  # the bar's line first, so the text does not run into it
            sys.stderr.write("\r\033[K")
        click.echo(text, err=err)

    def __call__(self, res, total: int) -> None:
        self.files += 1
        self.done += self.sizes.get(res.path, 0)
        self.base = self.bytes_read()
        if res.status == "failed" and res.error is not None:
            self._say(f"error: {res.error}")
            if res.error.remedy:
                self._say(f"  hint: {res.error.remedy}")
        elif res.status == "duplicate":
            self._say(f"duplicate: {res.path}: {'; '.join(map(str, res.warnings))}")
            return
        elif self.verbose:
            self._say(self._line(res), err=self.err)
        if self.verbose or res.status == "ingested":
            self._warnings(res)

    def _warnings(self, res) -> None:
        """Every warning with ``verbose``, else the first few and how many more."""
        shown = res.warnings if self.verbose else res.warnings[: self.FIRST_WARNINGS]
        for w in shown:
            self._say(f"  warning: {res.path}: {w}")
        if len(res.warnings) > len(shown):
            more = len(res.warnings) - len(shown)
            self._say(f"  ... {more} more warning(s): llmbench warnings {shlex.quote(res.path)}")

    @staticmethod
    def _line(res) -> str:
        if res.status == "ingested":
            return f"{res.path}: {res.parser}, {res.runs} run(s), {res.steps} step(s)"
        if res.status == "skipped":
            return f"{res.path}: skipped, {res.error.message if res.error else ''}"
        return f"{res.path}: {res.status}"

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


@cli.command()
@db_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--all", "all_columns", is_flag=True, help="Every column (as --columns all).")
@columns_option
def runs(db, fmt, all_columns, columns) -> None:
    """List the runs in the store.

    \b
    Example:
      llmbench runs --format markdown
      llmbench runs --columns run_id,model,num_gpus,dtype
    """
    from .formats import short_paths
    from .store import Store
    from .views import VIEWS, show_rows

    columns = "all" if all_columns else columns
    with Store(db, create=False) as store:
        found = sorted(store.run_rows(), key=natural_key)
    cols = list(RUN_COLUMNS)
    rows = [[r[k] for k in cols] for r in found]
    if fmt in ("table", "markdown") and columns != "all":  # sources as the view shows them
        at = cols.index("source")
        for row, short in zip(rows, short_paths([r["source"] for r in found]), strict=True):
            row[at] = short
    right = [RUN_COLUMNS[c].startswith(("INTEGER", "REAL")) for c in cols]
    out = show_rows(cols, rows, right, fmt, VIEWS["runs"], columns, everything="--all")
    click.echo(out, nl=False)
    if not rows:
        _empty_note()


@cli.command()
@db_option
@click.option(
    "--table", type=click.Choice(["runs", "steps", "events"]), default="steps", show_default=True
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "parquet"]),
    default="csv",
    show_default=True,
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write here [default: stdout]."
)
def export(db, table, fmt, output) -> None:
    """Export a whole table (JSON: an array of row objects).

    \b
    Example:
      llmbench export --table steps --format json -o steps.json
    """
    from .report import export as export_table

    if fmt == "parquet" and not output:
        raise UsageError("--format parquet needs -o FILE")
    export_table(db, table, fmt, output)


@cli.command("parsers")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@columns_option
def list_parsers(fmt, columns) -> None:
    """List the installed log parsers: name, framework, origin (JSON: and the step
    columns each can fill, `produces`).

    Third-party parsers register in the entry-point group `llmbench.parsers`.
    """
    from . import registry
    from .views import View, show_frame

    view = View(tuple(registry.PARSER_VIEW))
    click.echo(show_frame(registry.table(None), fmt, view, columns), nl=False)


def main() -> None:
    """Console-script entry point."""
    try:
        cli(prog_name="llmbench")
    except BrokenPipeError:  # piping into `head`
        sys.stderr.close()
        sys.exit(EXIT_OK)
    except KeyboardInterrupt:  # before or after a command ran: nothing to tell
        click.echo("Interrupted.", err=True)
        _leave(EXIT_INTERRUPTED)
    except SystemExit as e:
        if e.code == EXIT_INTERRUPTED:
            _leave(EXIT_INTERRUPTED)
        raise
    finally:
        # the command is over: a Ctrl-C now could only break the interpreter's own exit
        # (joining the worker pool's thread) with a traceback, or kill it by the signal
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _leave(code: int) -> None:
    """Exit now, skipping the interpreter's own shutdown: after a Ctrl-C the store is
    closed and the workers are gone, and that shutdown (joining threads, with SIGINT
    handling reset) is where a late signal would print a traceback or kill the process
    instead of exit ``code``. What multiprocessing would do at exit runs first, for a
    second at most, with its documented API: a child process still running (a Dask
    cluster's, stopped in the middle of starting) is terminated if daemonic, and each
    is joined. (The ingest's own workers are gone by now and made no semaphore: its
    resource tracker has nothing to warn of.)"""
    import multiprocessing

    def tidy() -> None:
        children = multiprocessing.active_children()
        for child in children:
            if child.daemon:
                with suppress(OSError):
                    child.terminate()
        for child in children:
            child.join()

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker = threading.Thread(target=tidy, daemon=True)
    worker.start()
    worker.join(timeout=1.0)
    with suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _models(ctx: click.Context, param: click.Parameter, value: str | None):
    from .settings import Settings

    return Settings.build(settings_file=value).models if value else None


def models_option(f):
    """``--settings FILE``, read for its ``[models.<name>]`` tables (passed as ``models``)."""
    return click.option(
        "--settings",
        "models",
        type=click.Path(dir_okay=False),
        callback=_models,
        help="Settings file for [models.<name>] shapes.",
    )(f)


class LazyChoice(click.Choice):
    """A Choice whose values are looked up when first needed (keeps start-up light)."""

    def __init__(self, values) -> None:
        self._values = values
        self.case_sensitive = True

    @property
    def choices(self):  # type: ignore[override]
        return tuple(self._values())


def _formulas():
    from .metrics import FORMULAS

    return FORMULAS


def _stats():
    from .metrics import STATS

    return STATS


def metric_options(f):
    f = click.option(
        "--tokens", type=float, help="Also report time and iterations for N tokens (e.g. 1e12)."
    )(f)
    f = click.option(
        "--stat",
        type=LazyChoice(_stats),
        default="median",
        show_default=True,
        help="Steady-state step-time statistic.",
    )(f)
    f = click.option(
        "--warmup",
        type=click.IntRange(0),
        help="Warm-up steps to skip [default: 10% of steps, at least 2].",
    )(f)
    f = click.option(
        "--formula",
        type=LazyChoice(_formulas),
        help="Model-FLOPs formula for every run [default: per run, the one its framework "
        "version prints where the log shows it (or settings say flops_formula=), else "
        "megatron-causal, what current frameworks print; `llmbench formulas` lists them].",
    )(f)
    return f


@cli.command()
@click.argument("select", nargs=-1, metavar="[RUN_ID|GLOB]...")
@db_option
@metric_options
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option(
    "--columns", help="Comma-separated columns, or 'all' [default: a summary; json: all]."
)
@click.option("--sort", "sort_by", help="Sort by this column (-COL: descending).")
@click.option("--group-by", help="Group rows by this column (sorted by it, then by num_gpus).")
@models_option
@click.option("--explain", is_flag=True, help="Show where every input of every run came from.")
@click.option(
    "--plot", type=click.Path(dir_okay=False), help="Also draw the scaling figure (png, svg, pdf)."
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False),
    help="Also write one self-contained HTML page: the sortable run table, where each "
    "input came from, the figures.",
)
@click.option(
    "--set",
    "set_items",
    multiple=True,
    metavar="K=V",
    help="An input for this report only, over what the runs hold, e.g. --set "
    "accelerator=h100-sxm (repeatable; the store is not changed).",
)
@model_config_option
def report(
    select,
    db,
    formula,
    warmup,
    stat,
    tokens,
    fmt,
    columns,
    sort_by,
    group_by,
    models,
    explain,
    plot,
    html_path,
    set_items,
    model_config,
) -> None:
    """Metrics per run: step time, tokens/s, TFLOPs per GPU, MFU, time to train.

    A metric whose inputs are missing is empty, and the `missing` column says
    what to --set (here, for this report, or when ingesting, for good).

    \b
    Example:
      llmbench report --stat last --formula dgxc
      llmbench report 'fp8/*' --format markdown --columns num_gpus,step_time_s,mfu
    """
    from .metrics import MetricOptions
    from .report import arrange, explanation, footnotes, for_screen, overrides_of, summarize_store
    from .views import report_view, show_frame

    if plot:
        from .plots import check_path

        check_path(plot)
    overrides = overrides_of(set_items, model_config)  # typos, a bad file: exit 2
    options = MetricOptions(formula, warmup, stat, tokens, models)
    with _notes(), _working("report"), _empty_page(html_path):
        table, runs = summarize_store(db, select, options, overrides=overrides)
    if plot:
        _draw("scaling", plot, table=table, group_by=group_by)
    if html_path:
        _write_html(html_path, db, select, table, runs, options, group_by)
    if explain:
        click.echo(explanation(table, runs, options), nl=False)
        return
    table = arrange(table, None, sort_by=sort_by, group_by=group_by)
    _flag_notes(table[table["flags"].notna()] if "flags" in table.columns else table.iloc[:0])
    if not len(table):
        _empty_note()
    view = report_view(tokens)
    click.echo(show_frame(table, fmt, view, columns, screen=for_screen), nl=False)
    if fmt == "table":
        click.echo(footnotes(table, options), nl=False)


@contextmanager
def _notes():
    """The library's DataWarnings (runs left out, rows that could not be read) as
    ``note:`` lines on stderr."""
    import warnings

    from .plots import DataWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        yield
    from .views import grouped_notes

    said = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    for line in grouped_notes(said):
        click.echo(f"note: {line}", err=True)


@contextmanager
def _working(label: str):
    """On a terminal, once the block has run ``_progress_after()`` seconds, a line
    '<label> ... N s' that counts until it ends (and is then wiped)."""
    if not sys.stderr.isatty():
        yield
        return
    stop = threading.Event()

    def tick() -> None:
        after = _progress_after()
        if stop.wait(after):
            return
        began = time.monotonic() - after
        while True:
            sys.stderr.write(f"\r{label} ... {time.monotonic() - began:.0f} s\033[K")
            sys.stderr.flush()
            if stop.wait(0.5):
                break
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()

    thread = threading.Thread(target=tick, name="llmbench-working", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _flag_notes(flagged) -> None:
    """A warning on stderr per kind of flag the rows carry, what it means and which runs
    (the rarest and gravest first: an impossible MFU is never lost among many notes)."""
    from .columns import FLAGS

    by_code: dict[str, list[str]] = {}
    for run_id, flags in zip(flagged["run_id"], flagged["flags"], strict=True):
        for code in flags.split(","):
            by_code.setdefault(code, []).append(run_id)
    order = list(FLAGS)
    for code, ids in sorted(
        by_code.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99
    ):
        if len(ids) == 1:
            click.echo(f"warning: {ids[0]}: {code}: {FLAGS.get(code, '')}", err=True)
            continue
        shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        click.echo(f"warning: {code} in {len(ids)} runs ({shown}): {FLAGS.get(code, '')}", err=True)


def _empty_note() -> None:
    click.echo("note: the store holds no runs yet: llmbench ingest PATH first", err=True)


def _draw(kind: str, output: str, **kw: Any) -> None:
    """Draw a figure; runs left out of it are noted on stderr."""
    from .plots import use_agg
    from .report import draw

    use_agg()
    with _notes(), _working(f"{kind} figure"):
        draw(kind, output, **kw)
    click.echo(f"wrote {kind} figure -> {output}", err=True)


@cli.command()
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("select", nargs=-1, metavar="[RUN_ID|GLOB]...")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Figure file; the format follows the suffix: .png, .svg, .pdf.",
)
@db_option
@metric_options
@click.option("--group-by", help="scaling: one series per value of this column [default: model].")
@click.option(
    "--value",
    default="step_time_s",
    show_default=True,
    type=click.Choice(list(VALUE_LABELS)),
    help="topology: the value drawn per run.",
)
@models_option
def plot(kind, select, output, db, formula, warmup, stat, tokens, group_by, value, models):
    """Draw a figure of the selected runs: scaling, steps, topology or loss.

    \b
    scaling   tokens/s against GPUs (log-log) with the ideal line; efficiency and MFU
    steps     step time over steps per run; warm-up shaded, steady-state line
    topology  a bar per run of --value, labelled GPUs and DP/TP/PP/MBS
    loss      training loss against tokens consumed

    \b
    Example:
      llmbench plot scaling -o scaling.png --stat last --formula dgxc
      llmbench plot topology 'topology-*' --value hw_tflops_per_gpu -o topo.svg
    """
    from .metrics import MetricOptions

    options = MetricOptions(formula, warmup, stat, tokens, models)
    _draw(kind, output, db=db, select=select, group_by=group_by, value=value, options=options)


@cli.command()
@click.option(
    "--model", help="Catalog name, e.g. gpt3-175b, llama3-70b, deepseek-v3 (or --model-config)."
)
@click.option("--gpus", type=click.IntRange(1), required=True)
@click.option("--global-batch-size", type=click.IntRange(1), required=True)
@click.option(
    "--step-time",
    type=click.FloatRange(0, min_open=True),
    help="Seconds per step (more than 0); or --calibrate.",
)
@click.option(
    "--calibrate",
    metavar="RUN_ID|GLOB[,...]",
    help="Take the step time from the efficiency measured on these stored runs of the "
    "model (a fitted scaling law) instead of --step-time.",
)
@db_option
@click.option(
    "--seq-len",
    type=click.IntRange(1),
    help="[default: the model's; with --calibrate, the calibrating runs']",
)
@click.option("--dtype", default="bf16", show_default=True)
@click.option(
    "--accelerator",
    help="[default: h100-sxm; with --calibrate, the calibrating runs' accelerator]",
)
@click.option(
    "--recompute",
    type=click.Choice(["none", "selective", "full"]),
    default="none",
    show_default=True,
)
@click.option("--tp", type=click.IntRange(1), default=1, show_default=True)
@click.option("--pp", type=click.IntRange(1), default=1, show_default=True)
@click.option("--zero-stage", type=click.IntRange(0, 3), default=0, show_default=True)
@click.option(
    "--formula",
    type=LazyChoice(_formulas),
    help="FLOPs convention [default: the one current frameworks print, megatron-causal].",
)
@click.option("--tokens", type=float, help="Also the time and iterations for N tokens.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option(
    "--lora", is_flag=True, help="LoRA fine-tuning: the base weights frozen (2/3 of the FLOPs)."
)
@model_config_option
@click.option(
    "--set",
    "set_items",
    multiple=True,
    metavar="K=V",
    help="Any shape field or setting a log can give, e.g. --set mtp_num_layers=0 --set "
    "sliding_window=4096 (repeatable).",
)
def estimate(
    model,
    gpus,
    global_batch_size,
    step_time,
    seq_len,
    dtype,
    accelerator,
    recompute,
    tp,
    pp,
    zero_stage,
    formula,
    tokens,
    fmt,
    calibrate,
    db,
    lora,
    model_config,
    set_items,
) -> None:
    """The report's metrics without a log, for what-if planning.

    \b
    Example:
      llmbench estimate --model gpt3-175b --gpus 128 --global-batch-size 256 \\
          --step-time 7.47 --dtype fp8 --accelerator h100-sxm --formula dgxc
      llmbench estimate --model gpt3-175b --gpus 4096 --global-batch-size 8192 \\
          --dtype fp8 --formula dgxc --calibrate '*/175b/*'
      llmbench estimate --model-config config.json --gpus 256 --global-batch-size 4096 \\
          --seq-len 4096 --step-time 10.4 --accelerator gb300 --dtype mxfp8
    """
    from .planning import estimate as planned
    from .settings import parse_set
    from .views import one_row_text

    table = planned(
        model=model, values=parse_set(list(set_items)), lora=lora, model_config=model_config,
        gpus=gpus, global_batch_size=global_batch_size, step_time=step_time,
        calibrate=calibrate, db=db, seq_len=seq_len, dtype=dtype, accelerator=accelerator,
        recompute=recompute, tp=tp, pp=pp, zero_stage=zero_stage, formula=formula,
        tokens=tokens,
    )  # fmt: skip
    if "calibration" in table.columns:
        click.echo(f"note: {table['calibration'][0]}", err=True)
    _flag_notes(table[table["flags"].notna()])
    # a described run has no run id, source, ... ; its calibration is noted above
    said = ("run_id", "source", "parser", "framework", "status", "n_steps", "missing")
    click.echo(one_row_text(table, fmt, (*said, "round", "calibration")), nl=False)


@cli.command()
@click.argument("paths", nargs=-1)
@db_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--plot", metavar="FILE", help="Also draw time to train against accelerators.")
@click.option(
    "--benchmark", "benchmarks", multiple=True, metavar="NAME", help="Only this benchmark."
)
@workers_option
@click.option("-v", "--verbose", is_flag=True, help="A line per file, and every warning.")
@click.option(
    "--html", "html_path", metavar="FILE", help="Also write the scores as a self-contained page."
)
@columns_option
def mlperf(paths, db, fmt, plot, benchmarks, workers, verbose, html_path, columns) -> None:
    """MLPerf Training results: time to train per run, score per benchmark folder.

    PATHS are submission trees as published (<round>/<submitter>/results/<system>/
    <benchmark>/result_N.txt beside <submitter>/systems/<system>.json): a whole
    round, a submitter, one benchmark folder or one file. They are ingested into
    the store first (unchanged files are skipped); without PATHS, every MLPerf
    result already in the store is scored.

    The score is the official result summarizer's: the olympic mean of the runs'
    times to train (fastest and slowest dropped; a run that did not succeed counts
    as a slowest one) times the folder's scaling.json factor; `score_note` says
    why a folder has no score or breaks a rule. MFU is against the bf16 peak.

    \b
    Example:
      llmbench mlperf training_results_v4.0/ --benchmark gpt3 --plot gpt3.png
      llmbench mlperf NVIDIA/results/eos_n8_ngc24.04_nemo/llama2_70b_lora --format json
    """
    from .mlperf import (
        dropped,
        for_screen,
        result_files,
        save_figure,
        submissions_table,
        summarize_submissions,
    )
    from .plots import check_path
    from .settings import Settings
    from .views import VIEWS, show_frame

    if plot:
        check_path(plot)
    failed = False
    if paths:  # only result files: a path without results changes nothing stored
        files = result_files(paths)
        report, db = _ingest(
            files, db, settings=Settings(), workers=workers, verbose=verbose, summary_err=True
        )
        failed = bool(report.failed)
    with _working("scoring"):
        rows = summarize_submissions(db, paths, benchmarks, required=True)
    for line in dropped(rows):
        click.echo(line, err=True)
    if plot:
        with _notes(), _working("MLPerf figure"):  # folders left out: a note line each
            save_figure(rows, plot, list(benchmarks) or None)
        click.echo(f"wrote MLPerf scaling figure -> {plot}", err=True)
    if html_path:
        _mlperf_page(html_path, rows, list(benchmarks) or None)
    if fmt == "json" and not columns:
        import json

        click.echo(json.dumps(rows, indent=1))
    else:
        table = submissions_table(rows, None)
        click.echo(show_frame(table, fmt, VIEWS["mlperf"], columns, for_screen), nl=False)
    if failed:
        sys.exit(EXIT_INPUT)


def _kinds_help() -> str:
    return "\n".join(f"  {k:<10} {v}" for k, v in WARNING_KINDS.items())


@cli.command("warnings", epilog="\b\nKinds:\n" + _kinds_help())
@click.argument("targets", nargs=-1, metavar="[PATH|RUN_ID]...")
@db_option
@click.option(
    "--kind", "kinds", multiple=True, type=click.Choice(list(WARNING_KINDS)), help="Only these."
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def list_warnings(targets, db, kinds, fmt) -> None:
    """List what ingest noticed in the stored files, with file and line.

    A TARGET is a path as ingested, a folder or a run_id (as for `forget`);
    without one, every stored file. Files ingested by an llmbench older than
    schema 4 have none listed: ingest them again after `forget` to list theirs.

    \b
    Example:
      llmbench warnings logs/ --kind value
    """
    from .store import Store
    from .views import warnings_text

    with Store(db, create=False) as store:
        found = store.warnings(targets)
    rows = [
        [relative(p), w.line, w.kind, w.message] for p, w in found if not kinds or w.kind in kinds
    ]
    click.echo(warnings_text(rows, fmt), nl=False)


@cli.command()
@click.argument("targets", nargs=-1, required=True, metavar="PATH|RUN_ID...")
@db_option
def forget(targets, db) -> None:
    """Remove from the store what was ingested from files.

    A TARGET is a path as ingested, a folder (every stored file under it), or a
    run_id (the file that holds that run: every run of it goes). The log files
    themselves are not touched; ingesting them again stores them again.

    \b
    Example:
      llmbench forget logs/old-run.log
      llmbench forget 2e518e85a6c5
    """
    from .store import Store

    with Store(db, create=False) as store:
        for target in targets:
            for path in store.forget(target):
                click.echo(f"forgot {relative(path)}")


@cli.command()
@db_option
@click.option(
    "--repair",
    is_flag=True,
    help="Remove what damaged parts break, then list what to ingest again.",
)
def check(db, repair) -> None:
    """Verify the store: SQLite integrity, rows without their run or file, parts
    missing, damaged or not listed, and stored files whose source changed (or is
    gone) since it was ingested.

    Exit 1 when the store is damaged or a source changed; a source that is gone
    is only noted (the store keeps its rows). With --repair, what damaged parts
    break is removed (healthy runs stay) and the sources to ingest again are
    listed.
    """
    from .store import Store, default_path

    db = db or default_path()
    with Store(db, create=False) as store:
        if repair:
            again = store.repair()
            for path in again:
                click.echo(
                    f"repaired: {relative(path)}: its rows were removed; ingest it again", err=True
                )
            if again:
                names = " ".join(relative(p) for p in again)
                click.echo(
                    f"  hint: llmbench ingest {names} (with the options used before)", err=True
                )
        found = store.check()
        counts = store.counts()
    for kind, detail in found:
        click.echo(f"{kind}: {detail}", err=kind != "missing")
    bad = [k for k, _ in found if k != "missing"]
    click.echo(
        f"{db}: {counts['files']} file(s), {counts['runs']} run(s), {counts['steps']} step(s), "
        f"{counts['events']} event(s); "
        + (f"{len(bad)} problem(s)" if bad else "ok")
        + (f", {len(found) - len(bad)} source(s) gone" if len(found) > len(bad) else "")
    )
    if bad:
        sys.exit(EXIT_INPUT)


@contextmanager
def _empty_page(path: str | None):
    """``report --html``: a selection that matches no run still writes its page, which
    says so (the error is raised all the same)."""
    from .errors import NoMatchError

    try:
        yield
    except NoMatchError as e:
        if path:
            from .page import empty_page

            _write_page(path, empty_page(f"{e.message}: nothing to show.", _command()))
        raise


def _write_html(path, db, select, table, runs, options, group_by) -> None:
    """``report --html``: the page of the report's table, written whole or not at all."""
    from .page import html_report
    from .plots import use_agg

    use_agg()
    with _working("html report"):
        page = html_report(
            db, select, table=table, runs=runs, options=options, group_by=group_by,
            command=_command(),
        )  # fmt: skip
    _write_page(path, page)


def _compare_page(path: str, comp, threshold: float) -> None:
    """``compare --html``: the pairs, what differs, and the figure."""
    from .page import compare_page
    from .plots import use_agg

    use_agg()
    _write_page(path, compare_page(comp, threshold, _command()))


def _mlperf_page(path: str, rows: list[dict], benchmarks) -> None:
    """``mlperf --html``: the scores per benchmark folder, and the figure."""
    from .page import mlperf_page
    from .plots import use_agg

    use_agg()
    with _notes():  # folders left out of the figure: a note line each
        page = mlperf_page(rows, benchmarks, _command())
    _write_page(path, page)


def _command() -> str:
    """The command line that made a page, quoted as a shell would need it."""
    return shlex.join(["llmbench", *sys.argv[1:]])


def _write_page(path: str, page: str) -> None:
    """An HTML page written whole or not at all."""
    from .page import write_page

    write_page(path, page)
    click.echo(f"wrote HTML report -> {path}", err=True)


@cli.command()
@db_option
@settings_options
@click.argument("baseline")
@click.argument("candidate")
@click.option(
    "--match",
    default="model,num_gpus",
    show_default=True,
    help="Columns that pair a baseline run with a candidate run.",
)
@click.option(
    "--metric",
    "metrics",
    help="Comma-separated: tokens_per_s_per_gpu, step_time_s, tflops_per_gpu, mfu, "
    "tokens_per_s, loss_at_tokens [default: tokens_per_s_per_gpu, else the first of "
    "tokens_per_s and step_time_s every pair has on both sides].",
)
@click.option(
    "--threshold",
    type=float,
    default=0.02,
    show_default=True,
    help="Smallest change (a fraction) called faster or slower.",
)
@click.option("--confidence", type=float, default=0.95, show_default=True)
@click.option("--warmup", type=int, default=None, help="Steps left out at the start of each run.")
@click.option(
    "--formula",
    type=LazyChoice(_formulas),
    help="FLOPs convention for both sides' TFLOP/s and MFU [default: megatron-causal].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json"]), default="table")
@click.option(
    "--fail-on-regression", is_flag=True, help="Exit 3 when any verdict is slower (for CI)."
)
@click.option("--explain", is_flag=True, help="Say how the intervals and verdicts are made.")
@click.option(
    "--plot",
    "plot_path",
    metavar="FILE",
    help="Also draw each pair's step times side by side and the changes with their intervals.",
)
@click.option(
    "--html", "html_path", metavar="FILE", help="Also write the verdicts as a self-contained page."
)
def compare(
    db, set_items, settings_file, path_pattern, model_config, baseline, candidate, match, metrics,
    threshold, confidence, warmup, formula, seed, fmt, fail_on_regression, explain, plot_path,
    html_path,
) -> None:  # fmt: skip
    """Compare CANDIDATE with BASELINE: per matched pair, the change of each metric
    with a bootstrap interval, a verdict (faster, slower, same) and the settings
    that differ.

    Each side is logs to read (files, folders, quoted globs; --settings, --set and
    --path-pattern apply), run ids or source globs of the store, a saved `report
    --format json`, a CSV of published numbers, or `reference` (the published rows
    llmbench ships). Join several with commas inside one argument.

    \b
    Example:
      llmbench compare 'runs/v1/*.log' 'runs/v2/*.log' --fail-on-regression
      llmbench compare reference 'results/*.out' --format markdown
    """
    from . import comparison as cmp
    from . import plots
    from .settings import Settings

    settings = Settings.build(set_items, settings_file, path_pattern, model_config=model_config)
    if plot_path:
        plots.check_path(plot_path)  # before any work
    sides = [[s for s in side.split(",") if s] for side in (baseline, candidate)]
    with _working("compare"):
        side = {"db": db, "warmup": warmup, "settings": settings, "formula": formula}
        comp = cmp.compare_runs(
            cmp.load_side(sides[0], **side),
            cmp.load_side(sides[1], **side),
            match=tuple(k.strip() for k in match.split(",") if k.strip()),
            metrics=tuple(m.strip() for m in metrics.split(",") if m.strip()) if metrics else None,
            threshold=threshold,
            confidence=confidence,
            seed=seed,
            db=db,
            warmup=warmup,
        )
    if explain:
        click.echo(cmp.EXPLAIN.strip(), err=True)
    if not len(comp.pairs):
        click.echo(
            "error: no baseline run found a candidate with the same "
            + ", ".join(comp.match)
            + "\n  hint: choose other columns with --match",
            err=True,
        )
        if comp.unmatched:
            click.echo(cmp.as_text(comp, "table"), err=True, nl=False)
        sys.exit(EXIT_INPUT)
    click.echo(cmp.as_json(comp) if fmt == "json" else cmp.as_text(comp, fmt), nl=False)
    if plot_path:
        plots.use_agg()
        fig = plots.plot_comparison(comp.pairs, comp.times, threshold)
        plots.save(fig, plot_path)
        plots.close(fig)
        click.echo(f"wrote comparison figure -> {plot_path}", err=True)
    if html_path:
        _compare_page(html_path, comp, threshold)
    if fail_on_regression and comp.regressed():
        sys.exit(EXIT_REGRESSION)


@cli.command("scaling")
@db_option
@click.argument("select", nargs=-1, metavar="[RUN_ID|GLOB]...")
@click.option(
    "--predict",
    default="",
    metavar="N[,N...]",
    help="GPU counts to predict tokens/s and efficiency at, with a 95% prediction interval.",
)
@click.option(
    "--force", is_flag=True, help="Predict past 16x the largest measured GPU count anyway."
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option(
    "--plot",
    "plot_path",
    metavar="FILE",
    help="Also draw the runs, the fitted law and its prediction band.",
)
@columns_option
def scaling_cmd(db, select, predict, force, fmt, plot_path, columns) -> None:
    """Scaling efficiency of the selected runs per model (against the smallest run),
    weak or strong scaling as the global batch says, and with --predict the
    tokens/s a fitted law (Amdahl or the Universal Scalability Law, whichever fits
    better) gives at other GPU counts.

    \b
    Example:
      llmbench scaling '*/128/*' '*/256/*' '*/512/*' --predict 1024,2048
    """
    from . import plots
    from .report import summarize_store
    from .scalability import curves, gpu_counts, law_lines, scaling
    from .views import VIEWS, show_frame

    if plot_path:
        plots.check_path(plot_path)  # before any work
    counts = gpu_counts(predict, "--predict")
    with _notes(), _working("scaling"):
        table, _ = summarize_store(db, select)
        out = scaling(table, counts, force=force)
    click.echo(show_frame(out, fmt, VIEWS["scaling"], columns), nl=False)
    if fmt == "table" and counts:
        for line in law_lines(out):
            click.echo(line)
    if plot_path:
        plots.use_agg()
        ax = plots.plot_scaling_law(out, curves(out))
        plots.save(ax, plot_path)
        plots.close(ax)
        click.echo(f"wrote scaling figure -> {plot_path}", err=True)


@cli.command("hardware")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@columns_option
def list_hardware(fmt, columns) -> None:
    """List the accelerators MFU can be computed for: dense peak TFLOP/s per dtype
    as frameworks count devices (an MI250X GCD, a TPU chip), memory, bandwidth,
    the names logs and MLPerf systems give them (matched ignoring case, spaces,
    dashes and a parenthesised part), and the datasheet each figure is from.

    \b
    Example:
      llmbench hardware --format json
      llmbench hardware --columns key,bf16,fp8,fp4
    """
    from .specs import hardware_table
    from .views import VIEWS, show_rows

    cols, rows = hardware_table()
    right = [c not in ("key", "name", "aliases", "source") for c in cols]
    out = show_rows(cols, rows, right, fmt, VIEWS["hardware"], columns, "--format json")
    click.echo(out, nl=False)


@cli.command("formulas")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def list_formulas(fmt) -> None:
    """List the FLOPs conventions (--formula NAME): each one's count, its source, the
    framework versions that print it, and what it counts (MLA, MoE, MTP, windows,
    Mamba-2 layers, ...); the default is the one current frameworks print.

    \b
    Example:
      llmbench formulas --format json
    """
    from .flops import formulas_table
    from .views import formulas_text

    click.echo(formulas_text(*formulas_table(), fmt), nl=False)


@cli.command("models")
@models_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@columns_option
def list_models(models, fmt, columns) -> None:
    """List the models whose shapes llmbench knows (with --settings, the settings
    file's [models.NAME] too): layers, hidden size, heads, query groups, FFN size,
    vocabulary, sequence length, MoE experts and top-k, and the parameter count.

    \b
    Example:
      llmbench models --format markdown
    """
    from .metrics import model_table
    from .views import VIEWS, in_billions, show_rows

    cols, rows = model_table(models)
    if fmt in ("table", "markdown"):
        rows = in_billions(cols, rows)
    right = [c not in ("model", "family", "aliases", "source") for c in cols]
    out = show_rows(cols, rows, right, fmt, VIEWS["models"], columns, "--format json")
    click.echo(out, nl=False)
