"""``python -m avmit_psych.analysis {train,evaluate,predict,search,replicate}``: the DNN baselines."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .._cli import Formatter
from ..dataset import schema
from ..dataset.schema import DatasetError
from ..models.config import REPO_CONFIGS

TRAIN_HELP = """\
Train one baseline model on AVMIT embeddings.

CONFIG is one of the paper's 24 configurations in analysis/configs/{recognition,savc}/ (or an
authors' released YAML, read as it is). The split CSVs may be in any released layout; their
tfrecord_filename column is resolved under --tfrecords.

  python -m avmit_psych.analysis train --config analysis/configs/recognition/yamnet_effnetb0_gru_avmit.yaml \\
      --tfrecords AVMIT_YamNet_EffNetB0/ --train-csv AVMIT_train.csv --val-csv AVMIT_validation.csv \\
      --out runs/yamnet_gru_avmit

The output folder gets config.yaml, history.csv (one row per epoch), best.weights.h5,
model.weights.h5 and metrics.json. Running the same command again after an interruption resumes
from the last finished epoch. --dry-run builds the model, prints its summary and, as the last
line, a JSON object with trainable_params.
"""

PREDICT_HELP = """\
Predict every stimulus of a suite: one predictions CSV row per stimulus, on its stimulus_id.

The manifest (stimuli generate's manifest.csv) gives stimulus_id, label, manipulation and
level; each stimulus's embeddings are read from the suite's TFRecords (features extract
--csv manifest.csv), found by a tfrecord_filename column or as <label>/<stimulus>.tfrecord
under --embeddings (--tfrecords is the same flag). Nothing new is embedded.

  python -m avmit_psych.analysis predict --model runs/savc_gru --manifest suite/manifest.csv \\
      --embeddings suite_embeddings/ --out predictions/savc_gru.csv

A recognition model classifies each stimulus (response: a class, p_<class> columns).
A SAVC model answers each stimulus's correspondence trial, the one humans answer: do the
stimulus's own sound and picture show the same action? Its audio and visual embeddings go in
as they are (a semantic_swap stimulus: the donor's audio, the source's picture). The answer
key (label) is 'different' for semantic_swap and 'same' otherwise; response is 'same' when
p_same >= 0.5; p_same and p_different are the model's probabilities. audio_only and
visual_only stimuli (grey picture or silence) have no correspondence question and are left out,
with a note. (For the paper's 1,920 random test pairs use `evaluate`.)

A manifest row whose TFRecord is missing or unreadable stops the run with one line naming the
stimulus and the file (exit 2); with --skip-bad such rows are left out and listed in
FILE_skipped.csv. The last line printed is a JSON object of metrics.
"""

SEARCH_HELP = """\
The paper's random search with the bootstrap, as an Optuna study.

Each trial takes hyperparameters drawn uniformly from SPACE (Optuna's RandomSampler with
--seed), trains on a resample (with replacement) of the data CSVs' rows and scores on the
out-of-bag rows, with early stopping (the space's patience; the paper: 8). Trial i has the i-th
draw as its values and a resample keyed on (seed, i), so its result is the same whichever
worker runs it.

  python -m avmit_psych.analysis search --space analysis/search/recognition.yaml \\
      --config analysis/configs/recognition/yamnet_effnetb0_gru_mit16.yaml \\
      --tfrecords AVMIT_YamNet_EffNetB0/ --data-csv MIT16_train.csv MIT16_validation.csv \\
      --out search/yamnet_gru

Trials live in an Optuna study (--storage, default DIR/search.db; --study, default the
config's name): results and the chosen configuration are trial and study attributes, exported
to DIR/results.csv (one row per trial, re-written as trials finish, at most every 30 s),
DIR/ranked.csv and DIR/best_config.yaml. Running again resumes.

Run the same command on several machines with one --storage postgresql://USER:PASS@HOST/DB
and --study NAME: the workers share the --trials (the study's total) with no trial run twice;
a worker that dies has its trial marked failed by the heartbeat check of another and re-run;
each worker stops when no trial is waiting or running. Watch with: optuna-dashboard URL.

The last line printed is a JSON object of what this worker did: trials_run, and seconds spent
training (train_s), in storage calls taking and finishing trials (storage_s; heartbeats, in
their own thread: heartbeat_s), exporting the CSVs (export_s), and once no trial was left to
take, in storage calls (poll_s) and asleep while the others' last trials ran (wait_s).
"""


def _data_args(p, *, csv_flags, root_aliases=()):
    p.add_argument("--tfrecords", *root_aliases, dest="tfrecords", required=True, type=Path,
                   metavar="ROOT", help="TFRecord root holding <label>/<video>.tfrecord files")
    for flag, helptext in csv_flags:
        p.add_argument(flag, required=True, type=Path, metavar="CSV", help=helptext)
    p.add_argument("--truncate", action="store_true",
                   help="keep the first 7 timesteps of longer sequences instead of an error")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip rows whose TFRecord is missing, truncated, corrupt (gzip or "
                        "TFRecord CRC) or not the released layout, and list them with the "
                        "reason (skipped_*.csv) instead of stopping at the first")
    p.add_argument("--no-cache", action="store_true", help="do not use the split cache")


def add_parsers(sub) -> None:
    t = sub.add_parser("train", help="train one baseline model", description=TRAIN_HELP,
                       formatter_class=Formatter)
    t.add_argument("--config", required=True, type=Path, metavar="C")
    t.add_argument("--dry-run", action="store_true",
                   help="build the model, print its summary and trainable parameters, stop")
    t.add_argument("--tfrecords", type=Path, metavar="ROOT")
    t.add_argument("--train-csv", type=Path, metavar="T")
    t.add_argument("--val-csv", type=Path, metavar="V")
    t.add_argument("--out", type=Path, metavar="DIR")
    t.add_argument("--epochs", type=int, help="override the config's maximum epochs")
    t.add_argument("--seed", type=int, help="override the config's seed")
    t.add_argument("--truncate", action="store_true")
    t.add_argument("--skip-bad", action="store_true",
                   help="as for evaluate: list bad TFRecords in skipped_*.csv and go on")
    t.add_argument("--no-cache", action="store_true")
    t.add_argument("--media", type=Path, metavar="media.csv",
                   help="`features probe` output: SAVC leaves out videos without audio "
                        "(no audio stream, or digital silence)")
    t.set_defaults(handler=_train)

    e = sub.add_parser(
        "evaluate", formatter_class=Formatter, help="test a trained model on the test set",
        description="Evaluate a trained model on the test set: metrics.json (recognition: "
                    "loss, top1, top5; SAVC: loss and accuracy on 1,920 fixed test pairs) and "
                    "predictions.csv (one row per test item, p_<class> columns).")
    e.add_argument("--model", required=True, type=Path, metavar="DIR",
                   help="the --out folder of a finished train run")
    _data_args(e, csv_flags=[("--test-csv", "the test set CSV")])
    e.add_argument("--out", required=True, type=Path, metavar="DIR")
    e.set_defaults(handler=_evaluate)

    p = sub.add_parser("predict", formatter_class=Formatter,
                       help="predictions for a stimulus suite, one row per stimulus",
                       description=PREDICT_HELP)
    p.add_argument("--model", required=True, type=Path, metavar="DIR",
                   help="the --out folder of a finished train run (recognition or SAVC)")
    _data_args(p, csv_flags=[("--manifest", "the stimulus manifest")],
               root_aliases=("--embeddings",))
    p.add_argument("--out", required=True, type=Path, metavar="FILE")
    p.set_defaults(handler=_predict)

    s = sub.add_parser("search", formatter_class=Formatter,
                       help="the paper's random hyperparameter search (an Optuna study)",
                       description=SEARCH_HELP)
    s.add_argument("--space", required=True, type=Path, metavar="SPACE.yaml")
    s.add_argument("--config", required=True, type=Path, metavar="C",
                   help="the base config (embeddings, RNN, fixed values)")
    s.add_argument("--tfrecords", required=True, type=Path, metavar="ROOT")
    s.add_argument("--data-csv", required=True, type=Path, nargs="+", metavar="CSV",
                   help="the data to resample (the paper: MIT16_train.csv MIT16_validation.csv)")
    s.add_argument("--out", required=True, type=Path, metavar="DIR")
    s.add_argument("--trials", type=int,
                   help="the study's total number of trials, shared by all its workers "
                        "(if not given: the space's)")
    s.add_argument("--epochs", type=int, help="cap each trial's epochs")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--storage", metavar="URL",
                   help="Optuna storage URL (if not given: sqlite:///DIR/search.db); "
                        "postgresql://USER:PASS@HOST/DB for workers on many machines")
    s.add_argument("--study", metavar="NAME",
                   help="the study to create or join (if not given: the config's name)")
    s.add_argument("--heartbeat", type=int, default=60, metavar="S",
                   help="seconds between a running trial's heartbeats; 0: no heartbeat "
                        "(a dead worker's trial is then re-run only when a worker next starts)")
    s.add_argument("--grace", type=int, metavar="S",
                   help="seconds without a heartbeat before a trial counts as dead, is marked "
                        "failed and re-run (if not given: twice --heartbeat)")
    s.add_argument("--no-cache", action="store_true")
    s.set_defaults(handler=_search)

    r = sub.add_parser(
        "replicate", formatter_class=Formatter, help="train and test all 24 baselines",
        description="Train and evaluate the paper's 24 models (12 recognition, 12 SAVC) and "
                    "print Table 6 and Table 7 with the paper's numbers beside ours. CSVS "
                    "holds AVMIT_train.csv, AVMIT_validation.csv, MIT16_train.csv, "
                    "MIT16_validation.csv and test_set.csv. Finished models are skipped, so "
                    "the command resumes.")
    r.add_argument("--tfrecords-vggish", required=True, type=Path, metavar="DIR")
    r.add_argument("--tfrecords-yamnet", required=True, type=Path, metavar="DIR")
    r.add_argument("--csvs", required=True, type=Path, metavar="DIR")
    r.add_argument("--out", required=True, type=Path, metavar="DIR")
    r.add_argument("--epochs", type=int, help="cap every model's epochs (quick runs)")
    r.add_argument("--only", metavar="TEXT",
                   help="only configs whose name contains TEXT (e.g. yamnet, gru_avmit)")
    r.add_argument("--configs", type=Path, default=REPO_CONFIGS, metavar="DIR")
    r.set_defaults(handler=_replicate)


def _load(csv, root, args, **kw):
    from ..dataset import tfrecords
    return tfrecords.load_split(csv, root, truncate=getattr(args, "truncate", False),
                                skip_bad=getattr(args, "skip_bad", False),
                                cache=not getattr(args, "no_cache", False), **kw)


def _report_skipped(split, out_dir: Path, what: str) -> None:
    if len(split.skipped):
        schema.write_csv(split.skipped, out_dir / f"skipped_{what}.csv")
    _print_skipped(split, out_dir / f"skipped_{what}.csv", what)


def _print_skipped(split, listed_in: Path, what: str, shown: int = 5) -> None:
    """--skip-bad: say how many rows were left out, where they are listed, and the first few."""
    if not len(split.skipped):
        return
    print(f"skipped {len(split.skipped)} bad rows of the {what} CSV -> {listed_in}",
          file=sys.stderr)
    for row in split.skipped.head(shown).itertuples():
        stimulus = f" (stimulus {row.stimulus_id})" if hasattr(row, "stimulus_id") else ""
        print(f"  skipped row {row.row}{stimulus}: {row.error}", file=sys.stderr)


def _train(args) -> int:
    from ..models import architectures, config, training
    cfg = config.load_config(args.config)
    if args.epochs is not None or args.seed is not None:
        cfg = cfg.replace(**{k: v for k, v in (("epochs", args.epochs), ("seed", args.seed))
                             if v is not None})
    if args.dry_run:
        model = architectures.build_model(cfg)
        model.summary(print_fn=lambda line, **_: print(line))
        print(json.dumps({"model": cfg.name, "task": cfg.task, "embeddings": cfg.embeddings,
                          "rnn": cfg.rnn,
                          "trainable_params": architectures.trainable_params(model)}))
        return 0
    missing = [f for f, v in (("--tfrecords", args.tfrecords), ("--train-csv", args.train_csv),
                              ("--val-csv", args.val_csv), ("--out", args.out)) if v is None]
    if missing:
        raise DatasetError(f"train needs {', '.join(missing)}", path=args.config,
                           fix="see python -m avmit_psych.analysis train --help")
    train_split = _load(args.train_csv, args.tfrecords, args, feature_set=cfg.embeddings,
                        timesteps=cfg.timesteps)
    val_split = _load(args.val_csv, args.tfrecords, args, feature_set=cfg.embeddings,
                      timesteps=cfg.timesteps)
    if args.media is not None:
        for split in (train_split, val_split):
            apply_media(split, args.media)
    args.out.mkdir(parents=True, exist_ok=True)
    _report_skipped(train_split, args.out, "train")
    _report_skipped(val_split, args.out, "validation")
    result = training.train(cfg, train_split, val_split, args.out)
    m = result.metrics
    print(f"{cfg.name}: best epoch {m['best_epoch']} of {m['epochs_run']}, val loss "
          f"{m['val_loss']:.4f}, val accuracy {m['val_accuracy']:.4f} -> {args.out}")
    return 0


def apply_media(split, media_path) -> None:
    """Mark each row's ``has_audio`` from a `features probe` table (audio stream and a peak
    above 0); videos the table does not list keep their audio."""
    import pandas as pd
    table = schema.read_csv(media_path)
    missing = [c for c in ("filename", "has_audio", "audio_peak") if c not in table.columns]
    if missing:
        raise DatasetError(f"required column '{missing[0]}' is missing", path=media_path,
                           column=missing[0], fix="give the output of `features probe`")
    t = table.set_index("filename")
    audible = t["has_audio"].astype(str).str.strip().str.lower().isin(["true", "1", "yes"]) & \
        (pd.to_numeric(t["audio_peak"], errors="coerce").fillna(0) > 0)
    split.rows["has_audio"] = split.rows["filename"].map(audible).fillna(True).astype(bool)


def _evaluate(args) -> int:
    from ..models import evaluation, training
    cfg, model = training.load_trained(args.model)
    split = _load(args.test_csv, args.tfrecords, args, feature_set=cfg.embeddings,
                  timesteps=cfg.timesteps)
    predictions, metrics = evaluation.evaluate(cfg, model, split)
    with schema.OutputBatch(args.out) as batch:
        schema.write_csv(predictions, batch.path("predictions.csv"))
        batch.path("metrics.json").write_text(json.dumps(metrics, indent=2))
        if len(split.skipped):
            schema.write_csv(split.skipped, batch.path("skipped_test.csv"))
    _print_skipped(split, args.out / "skipped_test.csv", "test")
    print(json.dumps(metrics))
    return 0


def _predict(args) -> int:
    from ..dataset import tfrecords
    from ..models import evaluation, training
    cfg, model = training.load_trained(args.model)
    stimuli = tfrecords.split_rows(args.manifest, args.tfrecords)
    if cfg.task != "recognition":
        missing = [c for c in ("stimulus_id", "manipulation") if c not in stimuli.columns]
        if missing:
            raise DatasetError(f"no {missing[0]} column: a SAVC model answers each stimulus's "
                               "correspondence trial, keyed by its manipulation",
                               path=args.manifest, column=missing[0],
                               fix="give a stimulus manifest (stimuli generate writes one); "
                                   "for the paper's random test pairs use `evaluate`")
    try:
        split = _load(args.manifest, args.tfrecords, args, feature_set=cfg.embeddings,
                      timesteps=cfg.timesteps)
    except DatasetError as err:
        raise _naming_the_stimulus(err, stimuli) from None
    skipped_csv = args.out.with_name(args.out.stem + "_skipped.csv")
    if len(split.skipped):
        split.skipped.insert(1, "stimulus_id", split.skipped["row"].map(
            stimuli.set_index("row")[_id_column(stimuli)]).astype(str))
    predictions, metrics = evaluation.predict_stimuli(cfg, model, split)
    schema.write_csv(predictions, args.out)
    if len(split.skipped):
        schema.write_csv(split.skipped, skipped_csv)
    _print_skipped(split, skipped_csv, "manifest")
    if metrics.get("n_left_out"):
        left = ", ".join(f"{n} {m}" for m, n in metrics["left_out"].items())
        print(f"note: left out {metrics['n_left_out']} stimuli without a correspondence "
              f"question ({left}: one modality is grey or silent)", file=sys.stderr)
    print(json.dumps(metrics))
    return 0


def _id_column(stimuli) -> str:
    return next((c for c in ("stimulus_id", "new_filename", "filename") if c in stimuli.columns),
                "row")


def _naming_the_stimulus(err: DatasetError, stimuli) -> DatasetError:
    """The error of one manifest row's TFRecord, saying which stimulus it belongs to."""
    if err.path is None:
        return err
    match = stimuli.index[stimuli["tfrecord_path"] == str(err.path)]
    if not len(match):
        return err
    row = stimuli.loc[match[0]]
    fix = err.fix
    if err.problem.startswith("TFRecord file not found"):
        fix = ("extract the suite's embeddings (python -m avmit_psych.features extract "
               "--csv MANIFEST --videos SUITE_DIR --out ROOT ...), check --embeddings (the "
               "root holding the <label>/ folders), or use --skip-bad to leave it out")
    return DatasetError(f"stimulus '{row[_id_column(stimuli)]}': {err.problem}",
                        path=err.path, row=err.row, column=err.column, fix=fix)


def _search(args) -> int:
    from ..dataset.tfrecords import Split
    from ..models import config, search
    if args.heartbeat < 0:
        raise DatasetError(f"--heartbeat {args.heartbeat} is negative",
                           fix="give whole seconds (0: no heartbeat), e.g. --heartbeat 60")
    if args.grace is not None and args.grace <= args.heartbeat:
        raise DatasetError(f"--grace {args.grace} is not longer than --heartbeat "
                           f"{args.heartbeat}: live trials would be taken for dead",
                           fix="give more seconds than --heartbeat, e.g. --heartbeat 60 "
                               "--grace 120")
    cfg = config.load_config(args.config)
    data = Split.concat([_load(c, args.tfrecords, args, feature_set=cfg.embeddings,
                               timesteps=cfg.timesteps) for c in args.data_csv])
    results = search.search(cfg, data, args.space, args.out, trials=args.trials,
                            epochs=args.epochs, seed=args.seed, storage=args.storage,
                            study=args.study, heartbeat=args.heartbeat, grace=args.grace)
    worker = results.attrs["worker"]
    if len(results):
        best = results.sort_values("oob_loss", kind="stable").iloc[0]
        print(f"{len(results)} trials; best out-of-bag loss {best['oob_loss']:.4f} (trial "
              f"{int(best['trial'])}) -> {args.out / 'results.csv'}, "
              f"{args.out / 'best_config.yaml'}")
    print(f"study '{worker['study']}' in {worker['storage']}: this worker ran "
          f"{worker['trials_run']} trials; watch it with optuna-dashboard {worker['storage']}")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in worker.items()}))
    return 0


def _replicate(args) -> int:
    from ..models import replicate
    table6, table7 = replicate.replicate(
        args.configs, csv_dir=args.csvs,
        roots={"vggish_vgg16": args.tfrecords_vggish,
                   "yamnet_effnetb0": args.tfrecords_yamnet},
        out_dir=args.out, epochs=args.epochs, only=args.only)
    print(replicate.format_table(table6, "Table 6: recognition on the AVMIT test set"))
    print()
    print(replicate.format_table(table7, "Table 7: SAVC on 1,920 test pairs"))
    return 0
