"""The README's settings table (section "### Settings") names every variable the settings object
reads, and nothing it does not: a setting added, renamed or dropped without its row fails here."""

import re
from pathlib import Path

from stagegate.settings import Settings, variable

README = Path(__file__).resolve().parents[3] / "README.md"


def documented(readme: str) -> set[str]:
    """The variables named in the first column of the table under "### Settings"."""
    section = readme.split("\n### Settings\n", 1)[1].split("\n### ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for cell in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)}


def read_by_settings() -> set[str]:
    return {variable(field) for field in Settings.model_fields}


def test_the_table_names_exactly_the_variables_the_settings_read() -> None:
    # The Kubernetes service variables are read as the default of STAGEGATE_KUBE_API, named in its row.
    in_cell = {"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"}
    assert documented(README.read_text()) == read_by_settings() - in_cell


def test_a_missing_row_is_caught() -> None:
    text = README.read_text()
    without = "\n".join(line for line in text.splitlines() if not line.startswith("| `STAGEGATE_PIN_TTL`"))
    assert "STAGEGATE_PIN_TTL" not in documented(without)
    assert "STAGEGATE_PIN_TTL" in read_by_settings()
