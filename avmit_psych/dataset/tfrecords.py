"""Read and write the released AVMIT TFRecord layout, and load whole splits as arrays.

The layout (facts.md): one GZIP-compressed TFRecord file per video at
``<label>/<video stem>.tfrecord``, holding one ``tf.train.SequenceExample`` with context features
``filename`` (bytes), ``label`` (bytes), ``audio_timesteps`` and ``visual_timesteps`` (int64)
and sequence features ``audio`` and ``visual_object``, each timestep one bytes value holding the
raw float32 vector. Embedding sizes (audio, visual): VGGish+VGG16 (128, 512),
YAMNet+EfficientNetB0 (1024, 1280). Sequences are padded with zeros at the end to 7 timesteps.

Reading does not go through ``tf.data``: each file is gunzipped (gzip checks its CRC, so a
truncated or corrupt file is caught), the TFRecord framing is walked with both of its CRC-32C
checksums checked (the length's and the data's, as TensorFlow's reader does; CRC-32C comes from
``google-crc32c``, a C extension: ~8 us for a 56 kB YAMNet record, where a NumPy version took
~330 us) and the SequenceExample is parsed with protobuf and checked feature by feature (kind
and count of every value), which is several times faster per file than a TF pipeline. Every
way a file can be wrong ends in one :class:`DatasetError` naming the file and the record, so
``load_split(skip_bad=True)`` can list it and go on.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import _tf
from .._atomic import atomic_path
from . import schema
from .schema import DatasetError

#: Embedding sizes (audio, visual) of the two released feature sets.
FEATURE_SETS: dict[str, tuple[int, int]] = {
    "vggish_vgg16": (128, 512),
    "yamnet_effnetb0": (1024, 1280),
}
TIMESTEPS = 7
CONTEXT_FEATURES = ("filename", "label", "audio_timesteps", "visual_timesteps")
SEQUENCE_FEATURES = ("audio", "visual_object")


def feature_set_of(audio_size: int, visual_size: int) -> str:
    for name, sizes in FEATURE_SETS.items():
        if sizes == (audio_size, visual_size):
            return name
    raise ValueError(f"embedding sizes ({audio_size}, {visual_size}) are not a released set "
                     f"({', '.join(f'{n} {s}' for n, s in FEATURE_SETS.items())})")


def released_feature_spec():
    """The feature spec the authors parse with (``tf.io.parse_single_sequence_example``)."""
    tf = _tf.tensorflow()
    context = {
        "filename": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.string),
        "audio_timesteps": tf.io.FixedLenFeature([], tf.int64),
        "visual_timesteps": tf.io.FixedLenFeature([], tf.int64),
    }
    sequence = {
        "audio": tf.io.FixedLenSequenceFeature([], dtype=tf.string),
        "visual_object": tf.io.FixedLenSequenceFeature([], dtype=tf.string),
    }
    return context, sequence


# --------------------------------------------------------------------------------------------
# One file
# --------------------------------------------------------------------------------------------
def serialize_example(filename: str, label: str, audio: np.ndarray,
                      visual: np.ndarray) -> bytes:
    """One SequenceExample in the released layout, serialised.

    Deterministically: protobuf writes map fields (the features by name) in an order of its
    own per process unless asked not to, and the same embeddings must give the same bytes
    whichever process (or Dask worker) writes them."""
    tf = _tf.tensorflow()
    audio = np.ascontiguousarray(audio, dtype="<f4")
    visual = np.ascontiguousarray(visual, dtype="<f4")
    if audio.ndim != 2 or visual.ndim != 2:
        raise ValueError("audio and visual must be 2-D arrays (timesteps, size)")
    example = tf.train.SequenceExample()
    ctx = example.context.feature
    ctx["filename"].bytes_list.value.append(filename.encode("utf-8"))
    ctx["label"].bytes_list.value.append(label.encode("utf-8"))
    ctx["audio_timesteps"].int64_list.value.append(audio.shape[0])
    ctx["visual_timesteps"].int64_list.value.append(visual.shape[0])
    lists = example.feature_lists.feature_list
    for row in audio:
        lists["audio"].feature.add().bytes_list.value.append(row.tobytes())
    for row in visual:
        lists["visual_object"].feature.add().bytes_list.value.append(row.tobytes())
    return example.SerializeToString(deterministic=True)


def write_example(path, filename: str, label: str, audio: np.ndarray,
                  visual: np.ndarray) -> Path:
    """Write one video's embeddings as a GZIP TFRecord, via a temporary name and a rename."""
    tf = _tf.tensorflow()
    path = Path(path)
    data = serialize_example(filename, label, audio, visual)
    with atomic_path(path) as tmp, tf.io.TFRecordWriter(str(tmp), options="GZIP") as writer:
        writer.write(data)
    return path


@dataclass
class Example:
    filename: str
    label: str
    audio: np.ndarray   # (timesteps, audio_size) float32
    visual: np.ndarray  # (timesteps, visual_size) float32


_REDO = "re-extract or re-download this file"


def masked_crc32c(data: bytes) -> int:
    """The TFRecord checksum of ``data``: its CRC-32C (Castagnoli), rotated right by 15 bits,
    plus 0xa282ead8, modulo 2**32 (TensorFlow's ``crc32c::Mask``). Tested against the CRCs of
    records written by ``tf.io.TFRecordWriter``."""
    crc = _crc32c()(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _crc32c():
    try:
        import google_crc32c
    except ImportError as err:  # pragma: no cover - a venv older than requirements.txt
        raise ImportError("reading TFRecords checks their CRC-32C with the google-crc32c "
                          "package: pip install -r requirements.txt") from err
    return google_crc32c.value


def _records(data: bytes, path) -> list[bytes]:
    """Walk TFRecord framing (uint64 length, uint32 masked CRC-32C of the length bytes, data,
    uint32 masked CRC-32C of the data), checking both CRCs of every record."""
    out, pos = [], 0
    while pos < len(data):
        where = f"record {len(out) + 1}"
        if pos + 12 > len(data):
            raise DatasetError(f"truncated TFRecord ({where}: {len(data) - pos} bytes left, a "
                               "record header takes 12)", path=path, fix=_REDO)
        length_bytes = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", length_bytes)
        (stored,) = struct.unpack_from("<I", data, pos + 8)
        computed = masked_crc32c(length_bytes)
        if stored != computed:
            raise DatasetError(f"{where}: length CRC mismatch (stored 0x{stored:08x}, computed "
                               f"0x{computed:08x}): not a TFRecord, or a corrupt one",
                               path=path, fix=_REDO)
        start = pos + 12
        if start + length + 4 > len(data):
            raise DatasetError(f"truncated TFRecord ({where} holds {length} bytes, "
                               f"{max(0, len(data) - start - 4)} are there)", path=path,
                               fix=_REDO)
        payload = data[start:start + length]
        (stored,) = struct.unpack_from("<I", data, start + length)
        computed = masked_crc32c(payload)
        if stored != computed:
            raise DatasetError(f"{where}: data CRC mismatch (stored 0x{stored:08x}, computed "
                               f"0x{computed:08x}): the record is corrupt", path=path, fix=_REDO)
        out.append(payload)
        pos = start + length + 4
    return out


#: The kind of value each feature of the released layout holds.
_CONTEXT_KINDS = {"filename": "bytes", "label": "bytes", "audio_timesteps": "int64",
                  "visual_timesteps": "int64"}


def _single_value(feature, want: str, what: str, path):
    """The one ``want`` ('bytes' or 'int64') value of a tf.train.Feature, or a DatasetError."""
    kind = feature.WhichOneof("kind")
    found = kind[:-len("_list")] if kind else "no value"
    if found != want:
        raise DatasetError(f"record 1, {what}: expected {want}, found {found} (not the "
                           "released layout)", path=path, fix=_LAYOUT_FIX)
    values = getattr(feature, kind).value
    if len(values) != 1:
        raise DatasetError(f"record 1, {what}: expected one {want} value, found {len(values)}",
                           path=path, fix=_LAYOUT_FIX)
    return values[0]


_LAYOUT_FIX = "write files with avmit_psych.dataset.tfrecords.write_example, or re-extract"


def _text(value: bytes, what: str, path) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise DatasetError(f"record 1, {what}: not UTF-8 text", path=path, fix=_LAYOUT_FIX)


def read_example(path, *, expected_label: str | None = None) -> Example:
    """Read one released-layout TFRecord file.

    Raises
    ------
    DatasetError
        Missing, truncated or corrupt file, a record that is not the released layout, or a
        label different from ``expected_label``.
    """
    tf = _tf.tensorflow()
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise DatasetError("TFRecord file not found", path=path,
                           fix="check --tfrecords (the root holding the <label>/ folders) and "
                               "the CSV's tfrecord_filename column, or use --skip-bad")
    try:
        data = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetError(f"not a complete GZIP TFRecord ({err})", path=path,
                           fix="re-extract or re-download this file (the released files are "
                               "GZIP-compressed)")
    records = _records(data, path)
    if len(records) != 1:
        raise DatasetError(f"expected one SequenceExample, found {len(records)} records",
                           path=path, fix="write one video per file")
    example = tf.train.SequenceExample()
    try:
        example.ParseFromString(records[0])
    except Exception as err:  # protobuf DecodeError
        raise DatasetError(f"record 1: corrupt SequenceExample ({' '.join(str(err).split())})",
                           path=path, fix=_REDO)
    ctx = example.context.feature
    missing = [k for k in CONTEXT_FEATURES if k not in ctx]
    lists = example.feature_lists.feature_list
    missing += [k for k in SEQUENCE_FEATURES if k not in lists]
    if missing:
        raise DatasetError(f"record 1: not the released layout: missing {', '.join(missing)}",
                           path=path, fix=_LAYOUT_FIX)
    context = {k: _single_value(ctx[k], kind, f"context feature '{k}'", path)
               for k, kind in _CONTEXT_KINDS.items()}
    label = _text(context["label"], "context feature 'label'", path)
    filename = _text(context["filename"], "context feature 'filename'", path)
    if expected_label is not None and label != expected_label:
        raise DatasetError(f"label '{label}' in the file, '{expected_label}' in the CSV",
                           path=path, fix="the CSV and the TFRecord must name the same class")
    arrays = {}
    for key, count_key in (("audio", "audio_timesteps"), ("visual_object", "visual_timesteps")):
        values = [_single_value(f, "bytes", f"sequence feature '{key}' timestep {t + 1}", path)
                  for t, f in enumerate(lists[key].feature)]
        n = int(context[count_key])
        if n != len(values):
            raise DatasetError(f"record 1: {count_key} says {n} but {len(values)} timesteps "
                               "are stored", path=path, fix="re-extract this file")
        if not values:
            raise DatasetError(f"record 1: no {key} timesteps", path=path,
                               fix="re-extract this file")
        sizes = {len(v) for v in values}
        if len(sizes) != 1 or next(iter(sizes)) % 4:
            raise DatasetError(f"record 1: {key} timesteps of unequal or non-float32 size "
                               f"({', '.join(map(str, sorted(sizes)))} bytes)", path=path,
                               fix="re-extract this file")
        arrays[key] = np.frombuffer(b"".join(values), dtype="<f4").reshape(len(values), -1)
    return Example(filename=filename, label=label, audio=arrays["audio"],
                   visual=arrays["visual_object"])


def pad_timesteps(x: np.ndarray, timesteps: int = TIMESTEPS, *, truncate: bool = False,
                  path=None) -> np.ndarray:
    """Zero-pad (at the end) to ``timesteps``; longer is an error unless ``truncate``."""
    if len(x) > timesteps:
        if not truncate:
            raise DatasetError(f"{len(x)} timesteps, more than {timesteps}", path=path,
                               fix="use --truncate to keep the first "
                                   f"{timesteps}, or raise the model's timesteps")
        return x[:timesteps]
    if len(x) == timesteps:
        return x
    out = np.zeros((timesteps, x.shape[1]), dtype=np.float32)
    out[:len(x)] = x
    return out


# --------------------------------------------------------------------------------------------
# Whole splits
# --------------------------------------------------------------------------------------------
@dataclass
class Split:
    """Embeddings of the rows of one CSV, ready for a model.

    audio : (N, timesteps, A) float32; visual : (N, timesteps, V) float32;
    labels : (N,) int64 indices into ``classes``; rows : the CSV rows kept (with ``row``, the
    1-based CSV row, and ``tfrecord_path``); skipped : rows left out with ``--skip-bad``
    (row, tfrecord_path, error).
    """

    audio: np.ndarray
    visual: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    rows: pd.DataFrame
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["row", "tfrecord_path", "error"]))
    from_cache: bool = False

    @property
    def feature_set(self) -> str:
        return feature_set_of(self.audio.shape[2], self.visual.shape[2])

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index) -> "Split":
        """The rows at ``index`` (repeats allowed, as in a bootstrap resample)."""
        index = np.asarray(index, dtype=np.int64)
        rows = self.rows.iloc[index].reset_index(drop=True) if self.rows is not None else None
        return Split(self.audio[index], self.visual[index], self.labels[index], self.classes,
                     rows)

    @staticmethod
    def concat(splits) -> "Split":
        splits = list(splits)
        rows = None if any(s.rows is None for s in splits) else \
            pd.concat([s.rows for s in splits], ignore_index=True)
        return Split(np.concatenate([s.audio for s in splits]),
                     np.concatenate([s.visual for s in splits]),
                     np.concatenate([s.labels for s in splits]), splits[0].classes, rows)


def manifest_tfrecord_filename(label: str, stimulus_id: str) -> str:
    """Where a stimulus's embeddings live: ``<label>/<stimulus name>.tfrecord`` (the stimulus
    id's last path component, so ids like ``barking/barking_1__none`` stay one level deep)."""
    return f"{label}/{str(stimulus_id).rsplit('/', 1)[-1]}.tfrecord"


#: CSV label column by layout (any released layout, video ratings, or a stimulus manifest).
_LABEL_COLUMNS = ("AVMIT_label", "label", "AVMIT label")


def split_rows(csv_path, root) -> pd.DataFrame:
    """The rows of a split CSV with their AVMIT label and resolved TFRecord path.

    Accepts the test set, video ratings, both released training layouts and stimulus
    manifests (which name a ``tfrecord_filename`` or else map to
    ``<label>/<stimulus_id>.tfrecord``).
    """
    csv_path, root = Path(csv_path), Path(root)
    df = schema.read_csv(csv_path)
    label_col = next((c for c in _LABEL_COLUMNS if c in df.columns), None)
    if label_col is None:
        raise DatasetError("no label column (AVMIT_label, label or 'AVMIT label')",
                           path=csv_path, fix="give a CSV in a released layout or a manifest")
    if "tfrecord_filename" in df.columns:
        rel = df["tfrecord_filename"].astype(str)
    elif "stimulus_id" in df.columns:
        rel = pd.Series([manifest_tfrecord_filename(l, s) for l, s in
                         zip(df[label_col].astype(str), df["stimulus_id"])], index=df.index)
    else:
        raise DatasetError("no tfrecord_filename column", path=csv_path,
                           column="tfrecord_filename",
                           fix="give a CSV in a released layout (it names each video's TFRecord)")
    out = df.copy()
    out["avmit_label"] = df[label_col].astype(str).str.strip()
    out["row"] = np.arange(1, len(df) + 1)
    root_resolved = root.resolve()
    paths = []
    for i, r in enumerate(rel):
        candidate = (root / r).resolve()
        if os.path.isabs(r) or root_resolved not in candidate.parents:
            raise DatasetError(f"'{r}' is not under the TFRecord root {root}", path=csv_path,
                               row=i + 1, column="tfrecord_filename",
                               fix="use paths relative to --tfrecords, like <label>/<video>.tfrecord")
        paths.append(str(root / r))
    out["tfrecord_path"] = paths
    bad = ~out["avmit_label"].isin(schema.TEST_CLASSES)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(f"label '{out['avmit_label'].iloc[i]}' is not one of the 16 test "
                           "classes the models classify", path=csv_path, row=i + 1,
                           column=label_col, fix="keep only rows of the 16 AVMIT test classes")
    return out


def _cache_key(csv_path: Path, rows: pd.DataFrame, options: dict) -> str:
    h = hashlib.sha256()
    st = csv_path.stat()
    h.update(json.dumps([str(csv_path.resolve()), st.st_size, st.st_mtime_ns, options],
                        sort_keys=True).encode())
    for p in rows["tfrecord_path"]:
        try:
            s = os.stat(p)
            h.update(f"{p}\0{s.st_size}\0{s.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            h.update(f"{p}\0missing\n".encode())
    return h.hexdigest()[:32]


def default_cache_dir() -> Path:
    base = os.environ.get("AVMIT_PSYCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "avmit_psych")
    return Path(base) / "splits"


def load_split(csv_path, root, *, feature_set: str | None = None, timesteps: int = TIMESTEPS,
               truncate: bool = False, skip_bad: bool = False, cache: bool = True,
               cache_dir=None, workers: int | None = None) -> Split:
    """Load the embeddings of every row of a split CSV.

    Parameters
    ----------
    csv_path : a CSV in any released layout (or a stimulus manifest).
    root : the TFRecord root (the folder holding ``<label>/`` sub-folders).
    feature_set : 'vggish_vgg16' or 'yamnet_effnetb0' to insist on; default: whatever the first
        file holds (all files must agree).
    timesteps : pad (zeros at the end) to this many timesteps; longer is an error unless
        ``truncate``.
    skip_bad : leave out rows whose file is missing or bad, listing them in ``Split.skipped``,
        instead of raising.
    cache : keep one compressed ``.npz`` per split (keyed on the inputs' paths, sizes and
        mtimes) in ``cache_dir`` (default ``~/.cache/avmit_psych/splits``, or
        ``$AVMIT_PSYCH_CACHE``); a second load of unchanged inputs reads only that file.
    """
    csv_path = Path(csv_path)
    rows = split_rows(csv_path, root)
    options = {"root": str(Path(root).resolve()), "feature_set": feature_set,
               "timesteps": timesteps, "truncate": truncate, "skip_bad": skip_bad}
    cache_file = None
    if cache:
        cache_file = Path(cache_dir or default_cache_dir()) / \
            f"{csv_path.stem}-{_cache_key(csv_path, rows, options)}.npz"
        if cache_file.exists():
            try:
                with np.load(cache_file, allow_pickle=False) as z:
                    keep = z["keep"]
                    skipped = pd.DataFrame({"row": z["skipped_row"],
                                            "tfrecord_path": z["skipped_path"],
                                            "error": z["skipped_error"]})
                    return Split(audio=z["audio"], visual=z["visual"], labels=z["labels"],
                                 classes=schema.TEST_CLASSES,
                                 rows=rows.iloc[keep].reset_index(drop=True),
                                 skipped=skipped, from_cache=True)
            except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
                cache_file.unlink(missing_ok=True)  # unreadable cache: rebuild it

    expected = FEATURE_SETS[feature_set] if feature_set else None
    paths = rows["tfrecord_path"].tolist()
    labels = rows["avmit_label"].tolist()

    def read_one(i):
        try:
            ex = read_example(paths[i], expected_label=labels[i])
            sizes = (ex.audio.shape[1], ex.visual.shape[1])
            if sizes not in FEATURE_SETS.values():
                raise DatasetError(f"embedding sizes {sizes} are not a released set "
                                   "(128, 512) or (1024, 1280)", path=paths[i],
                                   fix="use embeddings from VGGish+VGG16 or YAMNet+EffNetB0")
            if expected is not None and sizes != expected:
                raise DatasetError(f"embedding sizes {sizes}, expected {expected} for "
                                   f"{feature_set}", path=paths[i],
                                   fix="point --tfrecords at the matching embedding set")
            return (pad_timesteps(ex.audio, timesteps, truncate=truncate, path=paths[i]),
                    pad_timesteps(ex.visual, timesteps, truncate=truncate, path=paths[i]))
        except DatasetError as err:
            if not skip_bad:
                raise DatasetError(f"{err.problem} (named by {csv_path.name} row {i + 1})",
                                   path=err.path, row=err.row, column=err.column,
                                   fix=err.fix) from None
            return err

    n_workers = workers or min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        results = list(pool.map(read_one, range(len(paths))))
    good = [i for i, r in enumerate(results) if not isinstance(r, DatasetError)]
    bad = [i for i, r in enumerate(results) if isinstance(r, DatasetError)]
    if not good:
        raise DatasetError("no readable TFRecord for any row", path=csv_path,
                           fix="check --tfrecords")
    sizes = {(results[i][0].shape[1], results[i][1].shape[1]) for i in good}
    if len(sizes) > 1:
        raise DatasetError(f"files of different embedding sets under one root: {sorted(sizes)}",
                           path=csv_path, fix="keep one embedding set per --tfrecords root")
    audio = np.stack([results[i][0] for i in good]).astype(np.float32, copy=False)
    visual = np.stack([results[i][1] for i in good]).astype(np.float32, copy=False)
    label_idx = np.asarray([schema.LABEL_TO_INT[labels[i]] for i in good], dtype=np.int64)
    skipped = pd.DataFrame({"row": [i + 1 for i in bad],
                            "tfrecord_path": [paths[i] for i in bad],
                            "error": [str(results[i]) for i in bad]})
    if cache_file is not None:
        with atomic_path(cache_file, suffix=".npz") as tmp:
            _save_npz(tmp, audio=audio, visual=visual, labels=label_idx,
                      keep=np.asarray(good, dtype=np.int64),
                      skipped_row=skipped["row"].to_numpy(dtype=np.int64),
                      skipped_path=skipped["tfrecord_path"].to_numpy(dtype=str),
                      skipped_error=skipped["error"].to_numpy(dtype=str))
    return Split(audio=audio, visual=visual, labels=label_idx, classes=schema.TEST_CLASSES,
                 rows=rows.iloc[good].reset_index(drop=True), skipped=skipped)


def _save_npz(path, **arrays) -> None:
    """``np.savez_compressed`` with a fast deflate level (1): embeddings are mostly noise-like
    floats that level 6 barely shrinks further, at several times the cost. ``np.load`` reads it."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, array in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(array), allow_pickle=False)
