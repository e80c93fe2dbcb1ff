"""Batch work over files on a Dask cluster: ``--scheduler`` / ``--cluster``, shards, retries.

``features extract`` and ``stimuli generate`` run on one machine by default. Given
``--cluster local:N`` they start a ``distributed.LocalCluster`` of N worker processes (one
thread each) and close it at the end; given ``--scheduler tcp://HOST:8786`` they join a Dask
scheduler that is already running. The work still to do is split into shards of
``--shard-size`` videos; each shard is one Dask task, which writes its outputs atomically
(temporary name, fsync, rename) and returns its report or journal rows to the command, which
writes the run report / manifest as a single-machine run does. Outputs are byte-identical to
a single-machine run. A rerun skips finished work, so a run stopped by anything (a killed
worker, a killed command, a power cut) is resumed by running the same command again. A worker
that dies mid-shard is handled by Dask: its tasks go to the other workers (at most
``distributed.scheduler.allowed-failures`` = 3 deaths per shard); a shard whose code raises is
retried ``--retries`` times. Dask is imported only when one of the flags is given.

Lab machines
------------
Every machine must see the videos and the output folder under the *same absolute paths*
(an NFS/SMB mount at the same place, say ``/lab/avmit``), run the same Python environment
(``pip install -e .`` of this repository plus ``dask[distributed]``) and reach the scheduler's
port (8786) and each other. On one machine start the scheduler::

    dask scheduler                      # prints: Scheduler at: tcp://10.0.0.5:8786

on every machine that should work, one or more workers (one thread each: a worker runs one
shard at a time; TensorFlow uses the cores within it)::

    dask worker tcp://10.0.0.5:8786 --nworkers 2 --nthreads 1

and run the command anywhere (its own machine needs no worker)::

    python -m avmit_psych.features extract --videos /lab/avmit/videos \\
        --csv /lab/avmit/test_set.csv --out /lab/avmit/tfrecords --audio yamnet \\
        --visual effnetb0 --scheduler tcp://10.0.0.5:8786

Relative paths are made absolute on the command's machine before they are sent, so they
must mean the same on the workers. Pretrained models are loaded by each worker process once
(the first shard it runs) and kept for the next shards; ``--audio-model``/``--visual-weights``
files must be on the shared filesystem too, and ``imagenet``/TF Hub weights cached (or
downloadable) on every worker.

SLURM (dask-jobqueue)
---------------------
``pip install dask-jobqueue`` (not a dependency of this toolkit), then, in a Python session on
the login node that stays up for the run::

    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(queue="compute", cores=1, processes=1, memory="8GB",
                           walltime="04:00:00", job_extra_directives=["--cpus-per-task=4"])
    cluster.scale(jobs=20)              # 20 SLURM jobs, one worker each
    print(cluster.scheduler_address)    # e.g. tcp://10.1.2.3:34567

and pass that address to the command: ``--scheduler tcp://10.1.2.3:34567``. Workers that the
queue kills at their walltime are replaced by ``scale``; their shards are run again.

Test hook
---------
(used by tests/test_dask.py to kill a real worker process in the middle of a shard): when
``AVMIT_PSYCH_KILL_WORKER_IN_SHARD`` holds a shard number and ``AVMIT_PSYCH_KILL_WORKER_MARKER``
the path of a file that does not exist yet, the worker that runs that shard does the shard's
first item (so part of its outputs are written, as a crash would leave them), creates the
marker file (so the shard, rescheduled, runs whole) and SIGKILLs its own process. Unset (the
normal case), it costs one ``os.environ`` look-up per shard.
"""
from __future__ import annotations

import contextlib
import os
import re
from typing import Callable, Iterator

from .dataset.schema import DatasetError

#: How often a shard whose code raises is run again (a worker that dies is a separate matter:
#: Dask reschedules its tasks by itself).
DEFAULT_RETRIES = 2
KILL_ENV = "AVMIT_PSYCH_KILL_WORKER_IN_SHARD"
KILL_MARKER_ENV = "AVMIT_PSYCH_KILL_WORKER_MARKER"

_LOCAL = re.compile(r"^local:(\d+)$")
#: A scheduler address as ``distributed`` takes it: [protocol://]host[:port].
_ADDRESS = re.compile(r"^(?:(?:tcp|tls|ws|wss|ucx)://)?[A-Za-z0-9_.\-]+(?::\d{1,5})?$|"
                      r"^(?:(?:tcp|tls|ws|wss|ucx)://)?\[[0-9A-Fa-f:]+\](?::\d{1,5})?$")
_FIX_CLUSTER = "give local:N with N >= 1 worker processes, e.g. --cluster local:2"
_FIX_SCHEDULER = ("give the address `dask scheduler` printed, e.g. --scheduler "
                  "tcp://10.0.0.5:8786")


def add_arguments(parser, *, shard_size: int, unit: str) -> None:
    """The flags of a command that can run on Dask (see the module docstring)."""
    group = parser.add_argument_group(
        "on a Dask cluster (optional; without these flags the command runs on this machine)")
    group.add_argument("--scheduler", metavar="tcp://HOST:8786",
                       help="join a running Dask scheduler (`dask scheduler`, then `dask "
                            "worker tcp://HOST:8786` on each machine; the same paths on all)")
    group.add_argument("--cluster", metavar="local:N",
                       help="start N Dask worker processes on this machine for the run")
    group.add_argument("--shard-size", type=int, default=shard_size, metavar="N",
                       help=f"{unit} per Dask task")
    group.add_argument("--retries", type=int, default=DEFAULT_RETRIES, metavar="N",
                       help="times a Dask task that raised is run again")


def from_arguments(args) -> str | None:
    """The cluster the flags name (``'local:N'`` or a scheduler address), or None without the
    flags; bad values raise a :class:`DatasetError` naming the flag."""
    scheduler, cluster = getattr(args, "scheduler", None), getattr(args, "cluster", None)
    if scheduler is not None and cluster is not None:
        raise DatasetError("--scheduler and --cluster were both given",
                           fix="give one: --scheduler to join a running scheduler, --cluster "
                               "local:N to start workers on this machine")
    shard_size, retries = getattr(args, "shard_size", 1), getattr(args, "retries", 0)
    if shard_size is not None and shard_size < 1:
        raise DatasetError(f"--shard-size {shard_size} is below 1", fix="give 1 or more")
    if retries is not None and retries < 0:
        raise DatasetError(f"--retries {retries} is negative", fix="give 0 or more")
    if cluster is not None:
        parse(cluster, flag="--cluster")
        return cluster
    if scheduler is not None:
        parse(scheduler, flag="--scheduler")
        return scheduler
    return None


def parse(cluster: str, *, flag: str | None = None) -> tuple[str, str | int]:
    """``'local:N'`` -> ``('local', N)``; a scheduler address -> ``('scheduler', address)``.
    ``flag`` ``'--cluster'`` accepts only the first, ``'--scheduler'`` only the second."""
    text = str(cluster).strip()
    name = flag or "cluster"
    m = _LOCAL.match(text)
    if m and flag != "--scheduler":
        if int(m.group(1)) < 1:
            raise DatasetError(f"{name} '{text}' asks for no workers", fix=_FIX_CLUSTER)
        return "local", int(m.group(1))
    if flag == "--cluster" or (flag is None and text.startswith("local")):
        raise DatasetError(f"{name} '{text}' is not local:N", fix=_FIX_CLUSTER)
    if m:
        raise DatasetError(f"{name} '{text}' is not a scheduler address",
                           fix=f"for workers on this machine give --cluster {text}; to join a "
                               "scheduler give the address `dask scheduler` printed")
    if not _ADDRESS.match(text):
        raise DatasetError(f"{name} '{text}' is not a scheduler address", fix=_FIX_SCHEDULER)
    return "scheduler", text


@contextlib.contextmanager
def connect(cluster, *, timeout_s: float = 30):
    """A ``distributed.Client`` for ``cluster``: an existing Client (used as it is, not closed),
    ``'local:N'`` (a LocalCluster of N single-thread worker processes, closed at the end) or a
    scheduler address (joined; the scheduler and its workers are left running)."""
    from distributed import Client, LocalCluster

    if isinstance(cluster, Client):
        yield cluster
        return
    kind, value = parse(cluster)
    if kind == "local":
        # dashboard on a free port: a fixed one would clash with another run on the machine
        local = LocalCluster(n_workers=value, threads_per_worker=1, processes=True,
                             dashboard_address=":0")
        try:
            with Client(local) as client:
                yield client
        finally:
            _close_quietly(local)
        return
    try:
        client = Client(value, timeout=timeout_s)
    except (OSError, TimeoutError) as err:
        raise DatasetError(f"no Dask scheduler answered at {value} within {timeout_s:g} s "
                           f"({type(err).__name__})",
                           fix="start one with `dask scheduler` (and workers with `dask "
                               "worker ADDRESS`) or check the address and the firewall"
                           ) from None
    with client:
        yield client


def _close_quietly(local) -> None:
    """Close a LocalCluster. A worker that has loaded TensorFlow can take longer to exit than
    the nanny waits (4 s), and is then killed with a warning; after the run that is expected,
    so the warning is not shown."""
    import logging
    nanny_log = logging.getLogger("distributed.nanny")
    level = nanny_log.level
    nanny_log.setLevel(logging.ERROR)
    try:
        local.close()
    finally:
        nanny_log.setLevel(level)


def shards(items: list, size: int) -> list[list]:
    """``items`` in consecutive shards of ``size`` (the last may be shorter)."""
    if size < 1:
        raise ValueError("shard size must be >= 1")
    return [items[i:i + size] for i in range(0, len(items), size)]


def run_shards(client, fn: Callable, shard_list: list[list], *args, retries: int = DEFAULT_RETRIES,
               progress: bool = True, desc: str = "", unit: str = "item",
               **kwargs) -> Iterator[tuple[int, list, object, str | None]]:
    """Run ``fn(shard, *args, **kwargs)`` for every shard on the cluster, as shards finish.

    ``fn`` must be importable on the workers (a module-level function of this package). Yields
    ``(shard number, shard, result, None)``, or ``(number, shard, None, reason)`` for a shard
    that failed after its retries or killed too many workers. A :class:`DatasetError` raised by
    ``fn`` (bad input: every shard would fail alike) is not retried: the other shards are
    cancelled and the error is raised here as it was raised there. A progress bar counts the
    shards' items.
    """
    import uuid

    from distributed import as_completed
    from tqdm.auto import tqdm

    token = uuid.uuid4().hex[:8]
    name = desc or fn.__name__
    futures = {client.submit(_run_shard, fn, i, shard, args, kwargs, key=f"{name}-{token}-{i}",
                             retries=retries, pure=False): i
               for i, shard in enumerate(shard_list)}
    bar = tqdm(total=sum(len(s) for s in shard_list), unit=unit, desc=name,
               disable=not progress)
    try:
        for future in as_completed(list(futures)):
            i = futures[future]
            try:
                status, payload = future.result()
            except Exception as err:  # KilledWorker, or an error its retries did not cure
                detail = " ".join(str(err).split())[:300]
                yield i, shard_list[i], None, f"shard failed on the cluster ({type(err).__name__}" \
                                              f": {detail})"
            else:
                if status == "input_error":
                    problem = payload.pop("problem")
                    raise DatasetError(problem, **payload)
                yield i, shard_list[i], payload, None
            finally:
                bar.update(len(shard_list[i]))
    finally:
        bar.close()
        client.cancel([f for f in futures if not f.done()])


def _run_shard(fn: Callable, index: int, shard: list, args: tuple, kwargs: dict):
    """On a worker: one shard, with a bad-input error sent back as data (exceptions with
    keyword-only arguments do not survive pickling, and retrying them is pointless)."""
    _kill_if_asked(index, fn, shard, args, kwargs)
    try:
        return "ok", fn(shard, *args, **kwargs)
    except DatasetError as err:
        return "input_error", {"problem": err.problem,
                               "path": None if err.path is None else str(err.path),
                               "row": err.row, "column": err.column, "fix": err.fix}


def _kill_if_asked(index: int, fn: Callable, shard: list, args: tuple, kwargs: dict) -> None:
    """The test hook described in the module docstring."""
    wanted = os.environ.get(KILL_ENV)
    if wanted is None or wanted.strip() != str(index):
        return
    marker = os.environ.get(KILL_MARKER_ENV)
    if not marker or os.path.exists(marker):
        return
    fn(shard[:1], *args, **kwargs)
    with open(marker, "w") as fh:
        fh.write(str(os.getpid()))
    import signal
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
