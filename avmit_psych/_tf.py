"""Import TensorFlow and Keras quietly, only when a stage needs them.

On a CPU-only machine TensorFlow's C++ runtime writes lines such as ``I0000 ... port.cc] oneDNN
custom operations are on``, ``cudart_stub.cc] Could not find cuda drivers`` and ``E0000 ...
failed call to cuInit`` straight to file descriptor 2, before absl's logging is initialised, so
``TF_CPP_MIN_LOG_LEVEL`` does not stop all of them (it is set to 3 here, which stops those logged
later, and TensorFlow's Python logger is set to ERROR). They tell a user with no GPU nothing. While
TensorFlow is imported and its devices are first listed, descriptor 2 is therefore sent to a
temporary file; afterwards, lines in absl's log format (``[IWEF]MMDD hh:mm:ss...`` or
``[IWEF]0000 ...``) and absl's "before InitializeLog" notice are dropped and anything else
(a Python warning, a real error) is written to stderr as it came. ``--verbose`` on any command
(or ``AVMIT_PSYCH_VERBOSE=1``) leaves TensorFlow's output untouched.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

VERBOSE_ENV = "AVMIT_PSYCH_VERBOSE"
#: A line of absl/TensorFlow C++ logging: severity letter, then MMDD (0000 before absl's clock
#: is set) and a time or a thread id; or absl's notice about logging before InitializeLog.
_NATIVE_LOG = re.compile(r"^(?:[IWEF]\d{4} [\d:. ]+\S+\s+\d+ \S+:\d+\]|"
                         r"WARNING: All log messages before absl::InitializeLog\(\))")
_quieted = False


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip() not in ("", "0", "false", "no")


def filter_native_log(text: str) -> str:
    """``text`` without TensorFlow's C++ log lines (absl format); other lines kept in order."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not _NATIVE_LOG.match(line))


@contextlib.contextmanager
def quiet_native_stderr():
    """Send file descriptor 2 to a temporary file for the block; then write back to stderr
    whatever was not TensorFlow's C++ logging. Nothing but those log lines is lost."""
    if verbose():
        yield
        return
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (AttributeError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            rest = filter_native_log(tmp.read().decode("utf-8", "replace"))
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()


def tensorflow():
    """The ``tensorflow`` module, imported with its C++ start-up logging silenced (unless
    verbose); its devices are listed once inside the same quiet block, which is when a CPU-only
    machine logs the failed CUDA initialisation."""
    global _quieted
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if not verbose():
        # 3: the runtime's ERROR lines too (e.g. node_def_util's "NodeDef mentions attribute
        # use_unbounded_threadpool" on every tf.data map); real failures still raise in Python
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if _quieted and "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with quiet_native_stderr():
        import tensorflow as tf
        tf.config.list_physical_devices()
        import keras  # noqa: F401  (Keras 3 loads TF's runtime again: quiet that too)
        with contextlib.suppress(Exception):
            tf.constant(0.0) + 1.0  # the first op initialises the CPU device (cuInit)
    if not verbose():
        # TensorFlow's Python logger: retracing notices and the like are for TF developers
        tf.get_logger().setLevel("ERROR")
    _quieted = True
    return tf


def keras():
    """Keras 3 on the TensorFlow backend."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    tensorflow()
    import keras as _keras
    return _keras


def set_seeds(seed: int, *, deterministic: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow; ask TF for deterministic kernels where it has them."""
    tf = tensorflow()
    _keras = keras()
    _keras.utils.set_random_seed(int(seed))
    if deterministic:
        try:
            tf.config.experimental.enable_op_determinism()
        except (AttributeError, RuntimeError):  # older TF, or already configured
            pass
