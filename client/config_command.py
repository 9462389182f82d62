"""``stagegate config``: the effective settings, where each came from, secrets masked."""

import json
from dataclasses import asdict

import click

from stagegate.settings import load_settings, shown


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per setting, one per line.")
def config(as_json: bool) -> None:
    """Print every STAGEGATE_* setting as this process sees it: its value, whether it came
    from the environment or is the default, and who reads it (API, worker, CLI). The token
    is never shown and a URL's password is masked, so the output can go into a bug report.

    Exit codes: 0 printed; 2 a variable holds a bad value (the error names it).
    """
    rows = shown(load_settings())
    if as_json:
        for row in rows:
            click.echo(json.dumps(asdict(row)))
        return
    width = max(len(row.name) for row in rows)
    for row in rows:
        value = row.value if row.value else "(unset)"
        click.echo(f"{row.name:<{width}}  {value}  [{row.source}; {', '.join(row.readers)}]")
