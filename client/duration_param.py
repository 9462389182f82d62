"""``--pin-ttl DURATION``: a click parameter type over the kernel's one duration parser."""

from typing import Any

import click

from stagegate.durations import parse_duration


class DurationParam(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.3
    """Seconds, from ``3600``, ``90s``, ``30m``, ``4h``, ``2d`` or ``1h30m``. The service checks
    the bounds (its operator sets them), so only the spelling is checked here."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            seconds = parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if seconds <= 0:
            self.fail("must be longer than nothing", param, ctx)
        return seconds


DURATION = DurationParam()
