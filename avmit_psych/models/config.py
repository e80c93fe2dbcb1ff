"""Model configurations: the paper's 12 recognition and 12 SAVC baselines, in our YAML format or
the authors' released one.

Our format is one flat YAML mapping (see ``analysis/configs/``); unknown keys and values are
errors naming the file, the key and the allowed values. The authors' released files
(``published_configs/*.yaml``: nested ``rnn``, ``data``, ``training`` blocks) are recognised and
converted as they are.

Choices the paper leaves open, made here and kept as config values:

- Exponential learning-rate decay (recognition): ``lr_decay_rate`` 0.97 per ``lr_decay_epochs``
  1 epoch, applied smoothly per step (the learning rate halves about every 23 epochs; with early
  stopping most runs end well before that matters much). SAVC keeps a constant 1e-4 (1.0).
- The recognition RNN's ``dropout`` is the RNN layer's input dropout, as in the released files.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..dataset.schema import DatasetError, TEST_CLASSES
from ..dataset.tfrecords import FEATURE_SETS, TIMESTEPS

#: The repository's model configurations: ``analysis/configs/{recognition,savc}/*.yaml`` (the
#: paper's 12 recognition and 12 SAVC baselines).
REPO_CONFIGS = Path(__file__).resolve().parents[2] / "analysis" / "configs"

TASKS = ("recognition", "savc")
RNNS = ("frnn", "gru", "lstm")
TRAIN_SETS = ("avmit", "mit16")
ACTIVATIONS = ("relu", "swish")
MONITORS = ("val_loss", "val_accuracy")

#: Keras RNN layer names in the released files.
_RELEASED_RNN = {"tf.keras.layers.SimpleRNN": "frnn", "tf.keras.layers.GRU": "gru",
                 "tf.keras.layers.LSTM": "lstm"}


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines one baseline model and how it is trained."""

    name: str
    task: str
    embeddings: str
    train_set: str
    rnn: str
    rnn_units: int
    dropout: float
    learning_rate: float
    bottleneck: int | None = None        # recognition: 1x1 conv filters per modality
    activation: str | None = None        # recognition: squeeze-unit activation
    fusion_units: int = 128              # SAVC: Dense units per modality before the distance
    weight_decay: float = 0.0            # SAVC: 1e-5
    lr_decay_rate: float = 0.97
    lr_decay_epochs: float = 1.0
    batch_size: int = 16
    epochs: int = 200
    patience: int | None = 20            # early stopping on val loss; None: no early stopping
    min_delta: float = 0.001
    monitor: str = "val_loss"            # the checkpoint kept: best val loss or val accuracy
    timesteps: int = TIMESTEPS
    n_classes: int = len(TEST_CLASSES)
    savc_train_per_class: int | None = None  # SAVC: videos per class (405 AVMIT, 600 MIT-16)
    savc_val_per_class: int | None = None    # SAVC: 45 AVMIT, 60 MIT-16
    seed: int = 0
    source: str = field(default="", compare=False)

    @property
    def sizes(self) -> tuple[int, int]:
        return FEATURE_SETS[self.embeddings]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("source")
        return d

    def replace(self, **changes) -> "ModelConfig":
        return validate(dataclasses.replace(self, **changes).to_dict(), self.source)


_FIELDS = {f.name: f for f in dataclasses.fields(ModelConfig) if f.name != "source"}
_REQUIRED = [n for n, f in _FIELDS.items() if f.default is dataclasses.MISSING]
_CHOICES = {"task": TASKS, "embeddings": tuple(FEATURE_SETS), "train_set": TRAIN_SETS,
            "rnn": RNNS, "activation": ACTIVATIONS + (None,), "monitor": MONITORS}


def _error(source, problem, key=None, fix=None):
    return DatasetError(problem, path=source or None, column=key, fix=fix)


def validate(values: dict, source: str = "") -> ModelConfig:
    """A ModelConfig from a flat mapping, checking every key and value."""
    unknown = [k for k in values if k not in _FIELDS]
    if unknown:
        import difflib
        close = difflib.get_close_matches(unknown[0], list(_FIELDS), n=1)
        raise _error(source, f"unknown key '{unknown[0]}'", unknown[0],
                     f"did you mean '{close[0]}'?" if close else
                     f"keys are: {', '.join(_FIELDS)}")
    missing = [k for k in _REQUIRED if k not in values]
    if missing:
        raise _error(source, f"missing key '{missing[0]}'", missing[0],
                     f"a config needs {', '.join(_REQUIRED)}")
    out = {}
    for key, value in values.items():
        f = _FIELDS[key]
        if key in _CHOICES:
            if value not in _CHOICES[key]:
                allowed = ", ".join(str(c) for c in _CHOICES[key] if c is not None)
                raise _error(source, f"'{value}' is not a valid {key}", key, f"use one of: {allowed}")
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        if value is None:
            if "None" not in kind:
                raise _error(source, f"{key} cannot be empty", key, "give a value")
        elif kind.startswith("int"):
            smallest = 0 if key == "seed" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < smallest:
                raise _error(source, f"{key} must be a whole number >= {smallest}, got "
                                     f"{value!r}", key)
        elif kind.startswith("float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise _error(source, f"{key} must be a number >= 0, got {value!r}", key)
            value = float(value)
        elif kind.startswith("str") and not isinstance(value, str):
            raise _error(source, f"{key} must be text, got {value!r}", key)
        out[key] = value
    cfg = ModelConfig(**out, source=str(source))
    if cfg.task == "recognition" and (cfg.bottleneck is None or cfg.activation is None):
        raise _error(source, "a recognition model needs bottleneck and activation",
                     "bottleneck" if cfg.bottleneck is None else "activation")
    if not 0 <= cfg.dropout < 1:
        raise _error(source, f"dropout must be in [0, 1), got {cfg.dropout}", "dropout")
    if cfg.learning_rate <= 0:
        raise _error(source, "learning_rate must be > 0", "learning_rate")
    if not 0 < cfg.lr_decay_rate <= 1:
        raise _error(source, f"lr_decay_rate must be in (0, 1], got {cfg.lr_decay_rate}",
                     "lr_decay_rate")
    return cfg


def load_config(path) -> ModelConfig:
    """Read a config file in our format or the authors' released format."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError("config file not found", path=path,
                           fix="give a file from analysis/configs/ or your own")
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        row = mark.line + 1 if mark else None
        raise DatasetError(f"not valid YAML ({getattr(err, 'problem', err)})", path=path,
                           row=row - 1 if row else None, fix="fix the YAML syntax")
    if not isinstance(values, dict):
        raise DatasetError("a config is a YAML mapping of keys to values", path=path)
    if "rnn" in values and isinstance(values["rnn"], dict):
        values = from_released(values, path)
    values.setdefault("name", path.stem)
    return validate(values, str(path))


def from_released(raw: dict, path) -> dict:
    """Convert an authors' released YAML (nested blocks) into our flat keys."""
    try:
        rnn = _RELEASED_RNN[raw["rnn"]["function"]]
        data, training = raw["data"], raw["training"]
        if data.get("VGG_style", {}).get("enabled"):
            embeddings = "vggish_vgg16"
        elif data.get("mobilenet_style", {}).get("enabled"):
            embeddings = "yamnet_effnetb0"
        else:
            raise KeyError("data.VGG_style/mobilenet_style enabled")
        savc = "congruent_train_csv" in raw
        where = " ".join(str(raw.get(k, "")) for k in ("train_csv", "congruent_train_csv",
                                                        "model_path"))
        train_set = "mit16" if "MIT16" in where or "MIT_16" in where else "avmit"
        out = {
            "name": Path(path).stem, "task": "savc" if savc else "recognition",
            "embeddings": embeddings, "train_set": train_set, "rnn": rnn,
            "rnn_units": int(raw["rnn"]["units"]), "dropout": float(raw["rnn"]["dropout"]),
            "learning_rate": float(training["learning_rate"]),
            "batch_size": int(training["training_batch_size"]),
            "epochs": int(training["num_epochs"]), "timesteps": int(data["timesteps"]),
        }
    except KeyError as err:
        raise DatasetError(f"released config without {err}", path=path,
                           fix="give the file as released, or our flat format")
    except ValueError as err:
        raise DatasetError(f"released config with an unexpected value ({err})", path=path)
    if out["task"] == "recognition":
        out.update(bottleneck=int(raw["bottleneck_size"]),
                   activation=str(raw["bottleneck_activation"]),
                   patience=int(training["early_stopping"]),
                   n_classes=int(data.get("num_classes", len(TEST_CLASSES))))
    else:
        per_class = (600, 60) if out["train_set"] == "mit16" else (405, 45)
        out.update(weight_decay=1e-5, lr_decay_rate=1.0, patience=None, monitor="val_accuracy",
                   savc_train_per_class=per_class[0], savc_val_per_class=per_class[1])
    return out


def save_config(cfg: ModelConfig, path) -> Path:
    """Write a config in our flat YAML format (via a temporary name)."""
    from .._atomic import atomic_path
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    return path
