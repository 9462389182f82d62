"""Small files on more than one core: a bounded pool of copy processes, each running the one
engine (:class:`transfer.engine.CopyEngine`) over groups of small objects the parent hands it.

One process is GIL-bound at about one core (per small file: a GET or an open, a temporary
file, a hash, a rename, most of it Python). The parent keeps planning, batch records, syncs and
big files; children copy groups of small whole objects into the same dataset directory and
send back each file's record (:class:`transfer.objects.CopiedFile`), which the parent records
as it records its own threads' files. So a child's file counts as durable only once the
parent has synced and recorded it, exactly like a thread's, and a ``kill -9`` anywhere loses
only files in flight.

What a child holds, and no more: the source, rebuilt in the child by the staging's
:data:`SourceRecipe` (the same confinement, re-checked: a service staging's source is opened
within the requester's rights again, never from the worker's wider view), the dataset
directory, the label gate and the copy settings. Children start from a fresh interpreter
(``forkserver``), so they inherit no descriptor of the parent (ledger connection, the
dataset's lock, sockets); their environment is the parent's as the pool starts (the source's
credential chain reads it, as the parent's did) less every ``STAGEGATE_*`` variable (the
ledger's URL, the broker's, the peer credential), set before the source is built; and nothing
travels on a command line: recipe, gate and environment go through the pool's pipe. Each child
exits the moment the staging's process is gone (a watch on its pidfd), so no orphan goes on
writing into a dataset a rerun has taken over.
"""

import atexit
import contextlib
import functools
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.util
import os
import pickle
import select
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagegate.settings import adopt_environment, environment_without_settings
from stagegate.transfer.errors import TransferError
from stagegate.transfer.objects import CopiedFile, SourceObject

if TYPE_CHECKING:
    from stagegate.transfer.engine import CopyEngine, LabelGate, TransferConfig
    from stagegate.transfer.sources.base import Source

SourceRecipe = Callable[[], AbstractContextManager["Source"]]
"""A picklable callable that opens, in another process, the source a staging reads: the same
URL, options and confinement (what :func:`transfer.sources.source_recipe` makes)."""

# Only whole objects this small go to a child: a big file is one stream either way, and its
# parts (or its one long read) gain nothing from another interpreter.
PROCESS_FILE_MAX = 16 << 20
# A group is what one child copies per message: big enough that the pipe's round trip and the
# pickling are small beside the files, small enough that a batch spreads over every child.
GROUP_FILES = 32
GROUP_BYTES = 16 << 20

_PRELOADED = ["stagegate.transfer.copy_processes", "stagegate.transfer.engine"]


def default_processes(cores: int | None = None) -> int:
    """Copy processes for a machine of ``cores`` cores: one per four cores, the rest left to
    the copy threads' system calls, the kernel's writeback and the job the data is for; 1 on a
    small machine (this one has 2), at most 16."""
    cores = cores if cores is not None else (os.cpu_count() or 1)
    return max(1, min(16, cores // 4))


def groups_of(objects: Sequence[SourceObject]) -> list[list[SourceObject]]:
    """``objects`` cut in order into groups of at most GROUP_FILES files and about GROUP_BYTES."""
    groups: list[list[SourceObject]] = []
    current: list[SourceObject] = []
    size = 0
    for obj in objects:
        if current and (len(current) >= GROUP_FILES or size + obj.size > GROUP_BYTES):
            groups.append(current)
            current, size = [], 0
        current.append(obj)
        size += obj.size
    if current:
        groups.append(current)
    return groups


@dataclass(frozen=True, slots=True)
class _ChildSpec:
    recipe: SourceRecipe
    destination: str
    clear_the_way: bool
    config: "TransferConfig"
    gate: "LabelGate | None"
    environment: dict[str, str]
    parent: int


Outcome = CopiedFile | BaseException


class CopyProcesses:
    """``processes`` children copying groups of small objects into ``destination``.

    :meth:`submit` hands a group to the next free child and returns a future of one outcome
    per object, in order: its record, or the error that stopped it (each file is copied
    independently, with the engine's retries).
    """

    def __init__(
        self,
        processes: int,
        recipe: SourceRecipe,
        destination: Path,
        clear_the_way: bool,
        config: "TransferConfig",
        gate: "LabelGate | None",
    ) -> None:
        # The machine's budget is split, not multiplied: connections, buffers and the bandwidth
        # cap are shared by the children as the threads of one process would share them.
        share = replace(
            config,
            processes=1,
            concurrency=max(1, config.concurrency // processes),
            bandwidth_limit=config.bandwidth_limit and max(1, config.bandwidth_limit // processes),
        )
        # The environment as it is now, not as the fork server found it when it started.
        environment = environment_without_settings()
        spec = _ChildSpec(recipe, str(destination), clear_the_way, share, gate, environment, os.getpid())
        try:
            pickle.dumps(spec)
        except Exception as exc:  # a closure for a gate, an open client in a recipe
            raise TypeError(f"a copy process needs a picklable source recipe and label gate: {exc}") from exc
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOADED)
        _stop_fork_server_at_exit()
        self._pool = ProcessPoolExecutor(
            processes, mp_context=context, initializer=_start_child, initargs=(spec,)
        )
        self._futures: set[Future[list[Outcome]]] = set()

    def submit(self, objects: list[SourceObject]) -> "Future[list[Outcome]]":
        future = self._pool.submit(_copy_group, objects)
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        return future

    def cancel(self) -> None:
        """Groups not yet begun are dropped; a group under way finishes (a few small files)."""
        for future in list(self._futures):
            future.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@functools.cache
def _stop_fork_server_at_exit() -> None:
    """At exit, stop the fork server and wait for it: the children are its, so only then do
    their CPU seconds reach this process's own accounts (``wait4``, ``time``), as a thread's do."""

    def stop() -> None:
        with contextlib.suppress(Exception):  # multiprocessing's own, if ever renamed: CPU uncounted
            multiprocessing.forkserver._forkserver._stop()  # type: ignore[attr-defined]

    atexit.register(stop)


# -- in the child -----------------------------------------------------------------------------

_child: "CopyEngine | None" = None


def _die_with(parent: int) -> None:
    """Exit the moment ``parent`` (the staging's process, not the fork server this child was
    forked from, which outlives it) is gone: a watch on its pidfd, else a poll each second."""
    try:
        fd = os.pidfd_open(parent)
    except ProcessLookupError:
        os._exit(1)
    except OSError:  # a kernel before 5.3
        fd = None

    def watch() -> None:
        if fd is not None:
            select.select([fd], [], [])
        else:
            while Path(f"/proc/{parent}").exists():
                time.sleep(1.0)
        os._exit(1)  # mid-file: its temporary file is cleared by the rerun, nothing is renamed

    threading.Thread(target=watch, name="stagegate-parent-watch", daemon=True).start()


def _start_child(spec: _ChildSpec) -> None:
    global _child
    _die_with(spec.parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    adopt_environment(spec.environment)  # not the fork server's, from when it started
    from stagegate.transfer.engine import CopyEngine
    from stagegate.transfer.progress import ProgressTracker
    from stagegate.transfer.sink import DatasetDir

    stack = contextlib.ExitStack()
    source = stack.enter_context(spec.recipe())
    dataset = stack.enter_context(DatasetDir(spec.destination, clear_the_way=spec.clear_the_way))
    tracker = ProgressTracker(0, 0, None)  # the parent counts each file as its record arrives
    _child = stack.enter_context(CopyEngine(source, dataset, spec.config, tracker, label_gate=spec.gate))
    # A pool's child leaves by os._exit after its last group: only multiprocessing's own
    # finalizers run then, so the source (the CRT's threads) and the dataset close in one.
    multiprocessing.util.Finalize(None, stack.close, exitpriority=10)


def _copy_group(objects: list[SourceObject]) -> list[Outcome]:
    assert _child is not None, "copy process not started"
    futures = [_child.submit(obj, None) for obj in objects]
    outcomes: list[Outcome] = []
    for future in futures:
        try:
            outcomes.append(future.result())
        except BaseException as exc:  # each file's own outcome goes back to the parent
            outcomes.append(_portable(exc))
    return outcomes


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives the pipe as itself, else a TransferError saying what it was."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes, just made
    except Exception:
        return TransferError(f"{type(exc).__name__}: {exc}")
    return exc


def fan_out(
    group: "Future[list[Outcome]]",
    futures: list["Future[CopiedFile]"],
    on_copied: Callable[[CopiedFile], None],
    stopped: Callable[[], BaseException],
) -> None:
    """When ``group`` is done, settle each object's future with its outcome (``on_copied``
    first for a copy); a group dropped by a cancel settles them with ``stopped()``, a dead
    child (killed, out of memory) with a TransferError saying so."""

    def settle(done: "Future[list[Outcome]]") -> None:
        outcomes: list[Any]
        if done.cancelled():
            outcomes = [stopped() for _ in futures]
        elif (exc := done.exception()) is not None:
            error = TransferError(f"a copy process failed: {type(exc).__name__}: {exc}")
            outcomes = [error for _ in futures]
        else:
            outcomes = done.result()
        for future, outcome in zip(futures, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                on_copied(outcome)
                future.set_result(outcome)

    group.add_done_callback(settle)
