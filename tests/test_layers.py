"""Layers that read top-down: no module imports from a layer above its own.

The layers (``../shared/ARCHITECTURE.md``, README "Layout"), bottom to top:

0. the shared bottom: ``media`` (decode, encode, probe), ``dataset.schema`` (the contracts),
   ``errors``, ``_atomic``, ``_tf``, ``_cli`` (one-line errors, exit codes), ``_cluster``, and
   the package's ``__init__``;
1. ``dataset`` (ratings, TFRecords, download, synthetic data);
2. ``stimuli``, ``features``, ``models``: siblings, none imports another;
3. ``experiments``;
4. ``analysis``;
5. the top: every ``__main__`` and ``*_cli`` module (the command lines), ``api`` and ``demo``.

Every import counts, lazy ones inside functions included, since each is an arrow a reader
has to follow.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "avmit_psych"
BOTTOM = ("media", "dataset.schema", "errors", "_atomic", "_tf", "_cli", "_cluster")
SIBLINGS = ("stimuli", "features", "models")
RANKS = {"dataset": 1, "stimuli": 2, "features": 2, "models": 2, "experiments": 3,
         "analysis": 4, "api": 5, "demo": 5}
TOP = 5


def layer(module: str) -> tuple[int, str]:
    """(rank, group) of a module ``avmit_psych.a.b``; group names the sibling it belongs to."""
    parts = module.split(".")[1:]
    if not parts:
        return 0, ""
    name = ".".join(parts)
    if parts[-1] == "__main__" or parts[-1].endswith("_cli") and parts[-1] != "_cli":
        return TOP, parts[0]
    if any(name == b or name.startswith(b + ".") for b in BOTTOM):
        return 0, ""
    if parts[0] not in RANKS:
        raise AssertionError(f"avmit_psych.{name} is in no layer: add it to tests/test_layers.py "
                             "and to the README's Layout")
    return RANKS[parts[0]], parts[0]


def modules(root: Path) -> dict[str, Path]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        name = ".".join(rel.parts)
        out[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports (``from x import y`` with ``y`` a module
    counts as ``x.y``)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    root = next(iter(known)).split(".")[0]
    return {m for m in found if m == root or m.startswith(root + ".")}


def violations(root: Path) -> list[str]:
    mods = modules(root)
    known = set(mods)
    bad = []
    for name, path in mods.items():
        rank, group = layer(name)
        for target in sorted(imports(name, path, known)):
            t_rank, t_group = layer(target)
            if t_rank > rank:
                bad.append(f"{name} (layer {rank}) imports {target} (layer {t_rank})")
            elif rank == t_rank == 2 and group != t_group:
                bad.append(f"{name} imports its sibling {target} ({' / '.join(SIBLINGS)} "
                           "do not import each other)")
    return bad


def test_no_module_imports_from_a_layer_above_it():
    assert violations(PACKAGE) == []


def test_the_layers_are_where_the_architecture_puts_them():
    assert layer("avmit_psych.media")[0] == 0 and layer("avmit_psych.dataset.schema")[0] == 0
    assert layer("avmit_psych.dataset.ratings")[0] == 1
    assert layer("avmit_psych.dataset.synthetic.clips")[0] == 1
    assert layer("avmit_psych.stimuli.generate")[0] == layer("avmit_psych.models.savc")[0] == 2
    assert layer("avmit_psych.analysis.compare")[0] == 4
    for top in ("avmit_psych.analysis.compare_cli", "avmit_psych.dataset.__main__",
                "avmit_psych.api", "avmit_psych.demo.study", "avmit_psych.__main__"):
        assert layer(top)[0] == TOP, top
    # the moves this layout asked for
    assert (PACKAGE / "media.py").exists() and not (PACKAGE / "features" / "media.py").exists()
    assert not (PACKAGE / "stimuli" / "io.py").exists()
    assert not (PACKAGE / "analysis" / "demo_study.py").exists()
    assert not (PACKAGE / "dataset" / "synthetic.py").exists()
    assert {p.stem for p in (PACKAGE / "dataset" / "synthetic").glob("*.py")} == \
        {"__init__", "ratings", "embeddings", "clips", "observers"}


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "avmit_psych"
    for rel, text in {"__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            (root / parent / "__init__.py").touch()
        path.write_text(text)
    return root


@pytest.mark.parametrize("files, expected", [
    # a lazy upward import inside a function is an arrow too
    ({"dataset/ratings.py": "def f():\n    from ..analysis import compare\n",
      "analysis/compare.py": ""},
     ["avmit_psych.dataset.ratings (layer 1) imports avmit_psych.analysis.compare (layer 4)"]),
    # the bottom media module importing a stage
    ({"media.py": "from .features import frontend\n", "features/frontend.py": ""},
     ["avmit_psych.media (layer 0) imports avmit_psych.features.frontend (layer 2)"]),
    # siblings
    ({"stimuli/verify.py": "from avmit_psych.features.encoders import X\n",
      "features/encoders.py": ""},
     ["avmit_psych.stimuli.verify imports its sibling avmit_psych.features.encoders "
      "(stimuli / features / models do not import each other)"]),
    # analysis importing the demo (which sits on top)
    ({"analysis/compare.py": "from ..demo import study\n", "demo/study.py": ""},
     ["avmit_psych.analysis.compare (layer 4) imports avmit_psych.demo.study (layer 5)"]),
    # allowed: downward, within a stage, the command lines anywhere
    ({"analysis/compare_cli.py": "from ..demo import study\nfrom . import compare\n",
      "analysis/compare.py": "from ..experiments import plan\nfrom .. import media\n",
      "experiments/plan.py": "from ..stimuli import suite\nfrom .._cli import Formatter\n",
      "stimuli/suite.py": "from . import effects\nfrom ..dataset import schema\n",
      "stimuli/effects.py": "", "dataset/schema.py": "from .._atomic import x\n",
      "_atomic.py": "", "_cli.py": "from .errors import E\n", "errors.py": "",
      "media.py": "", "demo/study.py": "from ..analysis import compare\n"}, []),
])
def test_the_check_finds_an_upward_import(tmp_path, files, expected):
    assert violations(_package(tmp_path, files)) == expected
