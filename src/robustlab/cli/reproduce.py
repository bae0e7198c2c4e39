"""`robustlab reproduce <table> --scale tiny|paper [--out DIR]` and `robustlab reproduce --list`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from . import app
from .options import config_option, console



@app.command()
def reproduce(
    config: Optional[Path] = config_option(),
    table: Optional[str] = typer.Argument(None, help="Thesis table, e.g. table-4.8 (see --list)."),
    scale: str = typer.Option("tiny", help="tiny (digits, CPU minutes) or paper (thesis settings, CIFAR, GPU days)."),
    out: Optional[Path] = typer.Option(None, help="Report directory (default runs/reproduce/<table>-<scale>)."),
    cache: Optional[Path] = typer.Option(None, help="Shared model cache (default runs/reproduce/cache-<scale>); "
                                                   "models already there are reused."),
    n: Optional[int] = typer.Option(None, help="Evaluate on the first N test images (few-shot tables: N test episodes; default: all)."),
    seed: int = typer.Option(0, help="Random seed for every run."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    data_dir: Optional[Path] = typer.Option(None, help="Where dataset archives live (paper scale)."),
    threads: Optional[int] = typer.Option(None, help="CPU threads for torch (default: 1 at tiny scale, torch's at paper)."),
    extra_suite: Optional[str] = typer.Option(None, help="Add a column beside the thesis's: each row's worst case "
                                                           "under this attack suite, e.g. autoattack (Ch. 4 and 5)."),
    list_: bool = typer.Option(False, "--list", help="List the registered experiments and exit."),
):
    """Reproduce a thesis table: train what is missing, evaluate, report thesis vs ours and which claims held."""
    from ..core.errors import ConfigError
    from ..reproduce import get_table, list_tables, reproduce_table

    if list_:
        t = Table(title="registered thesis tables")
        for col in ("name", "chapter", "title", "scales"):
            t.add_column(col)
        for e in list_tables():
            t.add_row(e.name, str(e.chapter), e.title, ", ".join(e.scales))
        console.print(t)
        return
    if table is None:
        raise ConfigError("name a table (e.g. `robustlab reproduce table-4.8`) or pass --list")
    if n is not None and n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    exp = get_table(table)
    out = out or Path(f"runs/reproduce/{exp.name}-{scale}")
    cache = cache or Path(f"runs/reproduce/cache-{scale}")
    console.print(f"[bold]{exp.name}[/bold]: {exp.title} (scale {scale}) → {out}")
    result = reproduce_table(exp, scale, out, cache_dir=cache, seed=seed, device=device, n=n,
                             progress=True, log=lambda m: console.print(f"  {m}"),
                             data_dir=str(data_dir) if data_dir else None, threads=threads, extra_suite=extra_suite)
    colour = {"HELD": "green", "DID NOT HOLD": "red", "NOT TESTABLE": "yellow"}
    for c in result["claims"]:
        why = c.get("reason") or c.get("error")
        console.print(f"  [{colour[c['verdict']]}]{c['verdict']}[/] {c['claim']}" + (f" ({why})" if why else ""))
    console.print(f"wrote {out / 'report.md'} and {out / 'results.json'}")
