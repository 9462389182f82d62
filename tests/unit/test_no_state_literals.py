"""No module outside the kernel spells an audit action or a state as a string literal: they
come from ``stagegate.actions`` and ``stagegate.states``, so a renamed or added one cannot
drift between the ledger, the workers, the API and the client."""

import ast
from pathlib import Path

from stagegate.actions import AuditAction
from stagegate.states import DatasetState, EgressState, NodeStagingState, StagingState, TaskState

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("ledger", "workers", "api", "client")
ACTIONS = {a.value for a in AuditAction}
STATES = {
    s.value for enum in (StagingState, NodeStagingState, EgressState, DatasetState, TaskState) for s in enum
}


def _strings(node: ast.AST) -> list[ast.Constant]:
    """The string constants ``node`` is or directly holds (a tuple, list or set of them)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [c for e in node.elts for c in _strings(e)]
    return []


def _about_state(node: ast.AST) -> bool:
    return "state" in ast.unparse(node).lower()


def state_literals(tree: ast.AST) -> list[ast.Constant]:
    """State strings where a state is meant: compared with, assigned to, or passed as a state."""
    found: list[ast.Constant] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(_about_state(o) for o in operands):
                found += [c for o in operands for c in _strings(o)]
        elif isinstance(node, ast.keyword) and node.arg == "state":
            found += _strings(node.value)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                pairs = (
                    zip(target.elts, node.value.elts, strict=False)
                    if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                    else [(target, node.value)]
                )
                found += [c for t, v in pairs if _about_state(t) for c in _strings(v)]
        elif isinstance(node, ast.AnnAssign) and node.value is not None and _about_state(node.target):
            found += _strings(node.value)
    return [c for c in found if c.value in STATES]


def action_literals(tree: ast.AST) -> list[ast.Constant]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in ACTIONS
    ]


def offences() -> list[str]:
    out = []
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            if "migrations" in path.parts:  # a migration is history: it keeps the words it was written with
                continue
            tree = ast.parse(path.read_text(), str(path))
            for c in action_literals(tree) + state_literals(tree):
                out.append(f"{path.relative_to(ROOT)}:{c.lineno}: {c.value!r}")
    return out


def test_no_layer_spells_a_state_or_an_action() -> None:
    assert offences() == []


def test_the_scan_finds_what_it_forbids() -> None:
    source = """
job.state, job.updated_at = "released", now
if dataset.state != "writing" or row.state in ("ready", "evicting"): pass
update(TaskRow).values(state="queued")
event = job_event(job, "stage.completed")
state: str = "pending"
message = "the staging failed"  # prose, not a state
"""
    tree = ast.parse(source)
    assert sorted(c.value for c in state_literals(tree)) == [
        "evicting",
        "pending",
        "queued",
        "ready",
        "released",
        "writing",
    ]
    assert [c.value for c in action_literals(tree)] == ["stage.completed"]
