"""Nothing lost, nothing executed, no traceback: output directories lobnet did not write are refused, checkpoints
never run code, MLflow runs end FAILED when training fails, and the remaining bad inputs give one ``error:`` line
(built from real files in a temporary folder, as the other bad-input tests are)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch

from lobnet.data import errors as E
from lobnet.features import FeatureSpec
from lobnet.io import MARKER, OutputDir, check_output_dir, clean_stale, locked
from lobnet.prep.labels import LabelConfig
from lobnet.prep.prepared import prepare

from .conftest import AAPL10, AIG, REPO, need
from .test_train import _compose, _overrides

SPLIT = {"unit": "blocks", "blocks": 4, "train_blocks": 2}
ENV = dict(os.environ, PYTHONWARNINGS="ignore")
ENV.pop("MLFLOW_TRACKING_URI", None)


def _copy_aapl(folder: Path) -> Path:
    """The real AAPL level-10 pair copied into ``folder``; returns the message file."""
    src = need(AAPL10)
    folder.mkdir(parents=True, exist_ok=True)
    for f in (src, src.with_name(src.name.replace("message", "orderbook"))):
        shutil.copy(f, folder / f.name)
    return folder / src.name


def _prepare(path, out, cache, **kw):
    data = {"_target_": "lobnet.data.read_lobster", "path": str(path), "strict": False}
    return prepare(data, FeatureSpec(), LabelConfig(horizons=(5, 10)), SPLIT, 10, out, cache, **kw).summary


def _cli(tmp: Path, module: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args, f"hydra.run.dir={tmp / 'hydra'}"],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd or tmp,
    )


def _one_error(r: subprocess.CompletedProcess, *needles: str, rc: int = 2) -> str:
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == rc, r.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr[-3000:]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert "Traceback" not in r.stderr
    return lines[0]


# 1. output directories -------------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_prepare_never_replaces_its_input_folder_or_a_users_folder(tmp_path):
    msg = _copy_aapl(tmp_path / "in")
    before = sorted(p.name for p in msg.parent.iterdir())
    cache = tmp_path / "cache"
    with pytest.raises(E.OutputDirError, match="holds this command's input"):
        _prepare(msg.parent, msg.parent, cache)
    with pytest.raises(E.OutputDirError, match="inside this command's input folder"):
        _prepare(msg.parent, msg.parent / "prepared", cache)
    assert sorted(p.name for p in msg.parent.iterdir()) == before
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    with pytest.raises(E.OutputDirError, match=r"not written by lobnet \(it holds notes\.txt\)"):
        _prepare(msg, user, cache)
    assert (user / "notes.txt").read_text() == "keep me"
    # an empty folder is taken; a folder lobnet-prepare wrote is replaced; another command's is refused
    (tmp_path / "empty").mkdir()
    _prepare(msg, tmp_path / "empty", cache)
    assert json.loads((tmp_path / "empty" / MARKER).read_text())["command"] == "prepare"
    s = _prepare(msg, tmp_path / "empty", cache)
    assert s["cached"]
    s = _prepare(msg, tmp_path / "empty", None)  # another cache setting: same key, so still up to date
    (tmp_path / "empty" / "summary.json").write_text("{}")  # stale: rebuilt in place
    s = _prepare(msg, tmp_path / "empty", cache)
    assert not s["cached"] and (tmp_path / "empty" / "summary.json").read_text() != "{}"
    with pytest.raises(E.OutputDirError, match="written by lobnet-prepare, not lobnet-export"):
        check_output_dir(tmp_path / "empty", "export")


@pytest.mark.realdata
def test_every_command_refuses_a_bad_output_directory_with_one_error_line(tmp_path):
    msg = _copy_aapl(tmp_path / "in")
    (tmp_path / "afile").write_text("x")
    common = ["data=lobster", f"data.path={msg}", f"cache_dir={tmp_path / 'cache'}"]
    _one_error(_cli(tmp_path, "lobnet.cli.prepare", *common, "output_dir=."), "working directory")
    _one_error(_cli(tmp_path, "lobnet.cli.prepare", *common, "output_dir=afile/out"), "afile, which is a file")
    _one_error(_cli(tmp_path, "lobnet.cli.prepare", *common, f"output_dir={tmp_path}/afile"), "is a file")
    _one_error(
        _cli(tmp_path, "lobnet.cli.calibrate", *common, f"output_dir={msg.parent}"), "holds this command's input"
    )
    _one_error(_cli(tmp_path, "lobnet.cli.demo", f"output_dir={msg.parent}"), "not written by lobnet")
    syn = [sys.executable, "-m", "lobnet.cli.synthetic", "--events", "300", "--out", str(tmp_path / "afile" / "x")]
    _one_error(subprocess.run(syn, capture_output=True, text=True, env=ENV), "cannot write the day there")
    (tmp_path / "in" / "x.txt").write_text("mine")
    db = tmp_path / "m.db"
    mlflow.tracking.MlflowClient(f"sqlite:///{db}").search_experiments()  # an existing, empty store
    r = _cli(tmp_path, "lobnet.cli.compare", f"mlflow.tracking_uri=sqlite:///{db}", f"output_dir={msg.parent}")
    _one_error(r, "not written by lobnet")
    assert (tmp_path / "in" / "x.txt").read_text() == "mine" and msg.exists()
    # the store: mistyped (nothing created there) and a file store
    r = _cli(tmp_path, "lobnet.cli.compare", f"mlflow.tracking_uri=sqlite:///{tmp_path}/typo.db", "output_dir=o")
    _one_error(r, "no such MLflow database")
    assert not (tmp_path / "typo.db").exists() and not (tmp_path / "o").exists()
    _one_error(
        _cli(tmp_path, "lobnet.cli.compare", f"mlflow.tracking_uri=file://{tmp_path}/mlruns"), "file tracking store"
    )
    _one_error(_cli(tmp_path, "lobnet.cli.compare", "mlflow.tracking_uri=./mlruns"), "file tracking store")


@pytest.mark.realdata
def test_a_second_writer_is_refused_while_the_first_holds_the_directory(tmp_path):
    msg = _copy_aapl(tmp_path / "in")
    out = tmp_path / "out"
    with locked(out.resolve()):  # as a running lobnet-prepare holds it
        r = _cli(tmp_path, "lobnet.cli.prepare", "data=lobster", f"data.path={msg}", f"output_dir={out}", "window=10")
        _one_error(r, "another lobnet command is writing this directory now")
    assert not out.exists()
    od = OutputDir(out, "prepare")
    with od, pytest.raises(E.OutputDirError, match="another lobnet command"), OutputDir(out, "prepare"):
        pass
    assert not (out.parent / ".out.lock").exists()  # released and removed


@pytest.mark.realdata
def test_a_killed_runs_leftovers_are_cleaned_by_the_next_run(tmp_path):
    msg = _copy_aapl(tmp_path / "in")
    out, cache = tmp_path / "out", tmp_path / "cache"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has ended
    old = time.time() - 2 * 3600
    left = [
        tmp_path / f".out.tmp-{pid}-0123abcd",
        tmp_path / f".out.old-{pid}-0123abcd",
        tmp_path / ".out.tmp-89abcdef",
    ]
    for p in left:
        (p / "symbol=X").mkdir(parents=True)
    os.utime(left[2], (old, old))
    live = tmp_path / f".out.tmp-{os.getpid()}-0123abcd"  # a write in progress (this process): kept
    live.mkdir()
    (cache / "events").mkdir(parents=True)
    stale_cache = cache / "events" / f".abc.parquet.tmp-{pid}-0123abcd"
    legacy_cache = cache / "events" / f".abc.parquet.{'e' * 32}.tmp"
    stale_cache.write_bytes(b"partial")
    legacy_cache.write_bytes(b"partial")
    os.utime(legacy_cache, (old, old))
    _prepare(msg, out, cache)
    assert not any(p.exists() for p in [*left, stale_cache, legacy_cache])
    assert live.exists() and (out / "summary.json").exists()
    assert [p.name for p in (cache / "events").iterdir()] == [next((cache / "events").glob("*.parquet")).name]
    assert clean_stale(tmp_path) == []


# 2. checkpoints never execute code ----------------------------------------------------------------------------------


class Payload:
    """What a hostile checkpoint carries: unpickling it would create the file ``path``."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').write('ran')",))


@pytest.fixture(scope="module")
def fold(tmp_path_factory):
    """A tiny LSTM trained on one synthetic fold: (training tmp folder, fold folder, tracking URI)."""
    from lobnet.cli import train

    tmp = tmp_path_factory.mktemp("fold")
    train.run(_compose("train", _overrides(tmp, "model=lstm", "split.max_folds=1", "trainer.max_epochs=1")))
    return tmp, next((tmp / "train").glob("run-*/fold_0")), f"sqlite:///{tmp / 'mlflow.db'}"


def _fold_copy(fold_dir: Path, into: Path) -> Path:
    shutil.copytree(fold_dir, into)
    return into


def test_a_checkpoint_carrying_code_is_refused_and_not_run(tmp_path, fold):
    from lobnet.live.export import export_checkpoint

    _, fold_dir, uri = fold
    evil_dir = _fold_copy(fold_dir, tmp_path / "fold_0")
    ckpt = torch.load(evil_dir / "best.ckpt", map_location="cpu", weights_only=True)
    marker = tmp_path / "pwned"
    ckpt["hyper_parameters"] = {"x": Payload(str(marker))}
    torch.save(ckpt, evil_dir / "best.ckpt")
    r = _cli(tmp_path, "lobnet.cli.export", f"checkpoint={evil_dir / 'best.ckpt'}", f"output_dir={tmp_path / 'o'}")
    _one_error(r, str(evil_dir / "best.ckpt"), "refused")
    assert not marker.exists() and not (tmp_path / "o").exists()
    # through MLflow too: the fold logged as a model, loaded with mlflow.pyfunc and exported by URI
    from lobnet.tracking.model import log_fold_model

    client = mlflow.tracking.MlflowClient(uri)
    run = client.create_run(client.get_experiment_by_name("t").experiment_id, run_name="evil")
    log_fold_model(uri, run.info.run_id, evil_dir, evil_dir / "best.ckpt")
    with pytest.raises(E.LobDataError, match="refused"):
        mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    with pytest.raises(E.LobDataError, match="refused"):
        export_checkpoint(f"runs:/{run.info.run_id}", tmp_path / "o2", tracking_uri=uri)
    assert not marker.exists() and not (tmp_path / "o2").exists()


def _one_error_in_process(capsys, fn, *needles: str) -> str:
    """:func:`_one_error` for a command's library call under the CLI's own error reporting
    (:func:`lobnet.cli.reports_errors`), without a fresh interpreter for each case."""
    from lobnet.cli import reports_errors

    with pytest.raises(SystemExit) as e:
        reports_errors(fn)()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert e.value.code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err[-3000:]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def test_damaged_checkpoints_and_cards_give_one_error_line(tmp_path, fold, capsys):
    """Every damage is refused with one line naming the file; the real console script (a fresh process) once,
    the other cases through the same error reporting in this process."""
    from lobnet.live.export import export_checkpoint

    _, fold_dir, _ = fold
    d = _fold_copy(fold_dir, tmp_path / "fold_0")
    good = (d / "best.ckpt").read_bytes()
    out = f"output_dir={tmp_path / 'o'}"
    (d / "best.ckpt").write_bytes(b"")
    _one_error(_cli(tmp_path, "lobnet.cli.export", f"checkpoint={d / 'best.ckpt'}", out), str(d / "best.ckpt"), "empty")

    def export():
        export_checkpoint(d / "best.ckpt", tmp_path / "o")

    for content, needle in [(os.urandom(4096), "not a readable"), (good[: len(good) // 2], "trunc")]:
        (d / "best.ckpt").write_bytes(content)
        _one_error_in_process(capsys, export, str(d / "best.ckpt"), needle)
    (d / "best.ckpt").write_bytes(good)
    card = json.loads((d / "model.json").read_text())
    cases = [
        ("{not json", "not valid JSON"),
        (json.dumps({k: v for k, v in card.items() if k != "config"}), "lacks ['config']"),
        (json.dumps({**card, "config": {**card["config"], "colour": 1}}), "has no field colour"),
        (json.dumps({**card, "feature_names": card["feature_names"][:-1]}), "does not fit the model's input width"),
        (json.dumps({**card, "feature_names": card["feature_names"][::-1]}), "same names in another order"),
        (json.dumps({**card, "config": {**card["config"], "hidden": 7}}), "weights do not fit"),
    ]
    for text, needle in cases:
        (d / "model.json").write_text(text)
        _one_error_in_process(capsys, export, "model.json" if needle != "weights do not fit" else "best.ckpt", needle)
    assert not (tmp_path / "o").exists()


def test_export_never_replaces_the_fold_folder_and_a_corrupt_onnx_is_refused(tmp_path, fold):
    from lobnet.live.export import export_checkpoint

    _, fold_dir, _ = fold
    d = _fold_copy(fold_dir, tmp_path / "fold_0")
    before = sorted(p.name for p in d.iterdir())
    r = _cli(tmp_path, "lobnet.cli.export", f"checkpoint={d / 'best.ckpt'}", f"output_dir={d}")
    _one_error(r, "holds this command's input")
    assert sorted(p.name for p in d.iterdir()) == before
    export_checkpoint(d / "best.ckpt", tmp_path / "export")
    export_checkpoint(d / "best.ckpt", tmp_path / "export")  # its own output: replaced
    for name in ("model_step.onnx", "model.onnx"):
        shutil.copytree(tmp_path / "export", tmp_path / name)
        (tmp_path / name / name).write_bytes(b"\x08\x01garbage")
        r = _cli(tmp_path, "lobnet.cli.stream", f"model_dir={tmp_path / name}", f"output_dir={tmp_path / 's'}")
        _one_error(r, str(tmp_path / name / name), "not a loadable ONNX model")
    assert not (tmp_path / "s").exists()


def test_the_readmes_runs_uri_export_works_in_a_fresh_process(tmp_path, fold):
    """``lobnet-export checkpoint=runs:/<fold run id> tracking_uri=sqlite:///…`` as the README writes it, with no
    MLFLOW_TRACKING_URI set: it exports, and leaves no ./mlflow.db in the working directory."""
    tmp, fold_dir, uri = fold
    state = json.loads((fold_dir.parent / "state.json").read_text())
    rid = state["folds"]["0"]["run_id"]
    work = tmp_path / "work"
    work.mkdir()
    r = _cli(
        work, "lobnet.cli.export", f"checkpoint=runs:/{rid}", f"tracking_uri={uri}", f"output_dir={tmp_path / 'o'}"
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "o" / "model_step.onnx").exists()
    assert sorted(p.name for p in work.iterdir()) == ["hydra"], list(work.iterdir())


def test_a_damaged_resume_state_says_how_to_start_afresh(fold):
    from lobnet.cli import train

    tmp, fold_dir, _ = fold
    state_path, last = fold_dir.parent / "state.json", fold_dir / "last.ckpt"
    state, ckpt = state_path.read_text(), last.read_bytes()
    try:  # as if killed while fold 0 wrote its last checkpoint
        s = json.loads(state)
        s["folds"]["0"].pop("done")
        state_path.write_text(json.dumps(s))
        last.write_bytes(ckpt[:1000])
        with pytest.raises(E.LobDataError, match="the resume state is damaged") as ei:
            train.run(_compose("train", _overrides(tmp, "model=lstm", "split.max_folds=1", "trainer.max_epochs=1")))
        assert str(last) in ei.value.message and f"delete {last.parent}" in ei.value.message
        assert "RUNNING" not in mlflow_statuses(tmp)
    finally:
        state_path.write_text(state)
        last.write_bytes(ckpt)


# 4. failed runs end FAILED ----------------------------------------------------------------------------------------


def mlflow_statuses(tmp: Path) -> str:
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    return json.dumps(sorted(r.info.status for r in runs))


@pytest.mark.parametrize(
    "bad,needle",
    [("+model.colour=red", "has no field colour"), ("+model.hidden=-3", ""), ("window=-5", "window must be")],
)
def test_a_failed_training_leaves_no_run_running(tmp_path, bad, needle):
    args = [o for o in _overrides(tmp_path, "model=lstm", "split.max_folds=1") if not o.startswith("window")]
    r = _cli(tmp_path, "lobnet.cli.train", *args, bad, *([] if bad.startswith("window") else ["window=20"]))
    assert r.returncode != 0 and "error:" in r.stderr and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert needle in r.stderr
    statuses = json.loads(mlflow_statuses(tmp_path)) if (tmp_path / "mlflow.db").exists() else []
    assert "RUNNING" not in statuses and "FINISHED" not in statuses, statuses
    if bad.startswith("+model"):  # these fail inside the fold: the parent and the fold run both FAILED
        assert statuses == ["FAILED", "FAILED"], statuses


# 5, 6. the remaining bad inputs ------------------------------------------------------------------------------------


def _aapl_lines(tmp: Path) -> tuple[Path, Path, list[str], list[str]]:
    msg = _copy_aapl(tmp / "in")
    ob = msg.with_name(msg.name.replace("message", "orderbook"))
    return msg, ob, msg.read_text().splitlines(), ob.read_text().splitlines()


def _set(lines: list[str], row: int, col: int, value: str) -> None:
    f = lines[row - 1].split(",")
    f[col] = value
    lines[row - 1] = ",".join(f)


@pytest.mark.realdata
@pytest.mark.parametrize(
    "kind,file,row,needle",
    [
        ("nan_time", "message", 12, "is not a finite number"),
        ("inf_time", "message", 13, "is not a finite number"),
        ("int64_overflow", "message", 14, "beyond the 64-bit integer range"),
        ("huge_size", "orderbook", 15, "beyond what the features can sum"),
        ("huge_message_size", "message", 16, "beyond what the features can sum"),
        ("dummy_in_bid", "orderbook", 17, "levels out of order"),
        ("hole", "orderbook", 18, "but level 2 is not"),
    ],
)
def test_lobster_inputs_that_gave_tracebacks_or_garbage(tmp_path, kind, file, row, needle):
    from lobnet.data import read_lobster

    msg, ob, m, o = _aapl_lines(tmp_path)
    if kind == "nan_time":
        _set(m, row, 0, "nan")
    elif kind == "inf_time":
        _set(m, row, 0, "inf")
    elif kind == "int64_overflow":
        _set(m, row, 2, "99999999999999999999")
    elif kind == "huge_size":
        _set(o, row, 3, str(2**63 - 10))
    elif kind == "huge_message_size":
        _set(m, row, 3, str(2**62))
    elif kind == "dummy_in_bid":
        _set(o, row, 6, "9999999999")  # bid_px_2
    elif kind == "hole":
        f = o[row - 1].split(",")
        f[4:6] = ["9999999999", "0"]  # ask level 2 unoccupied, level 3 occupied
        o[row - 1] = ",".join(f)
    msg.write_text("\n".join(m) + "\n")
    ob.write_text("\n".join(o) + "\n")
    with pytest.raises(E.LobDataError) as ei:
        read_lobster(msg, strict=False)
    assert ei.value.file == str(msg if file == "message" else ob) and ei.value.row == row, ei.value.message
    assert needle in ei.value.reason
    r = _cli(tmp_path, "lobnet.cli.prepare", "data=lobster", f"data.path={msg}", "data.strict=false", "output_dir=o")
    _one_error(r, f"row {row}", needle)
    assert not (tmp_path / "o").exists()


def _rezip(src: Path, dst: Path, edit) -> None:
    import zipfile

    with zipfile.ZipFile(src) as z:
        (member,) = z.namelist()
        lines = z.read(member).decode().splitlines()
    edit(lines)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(member, "\n".join(lines) + "\n")


@pytest.mark.realdata
def test_tick_files_with_a_nan_time_or_a_zero_price_trade_are_refused(tmp_path):
    from lobnet.data import read_quotes

    day = "20131007"
    src = need(AIG)
    for kind, needle in [("nan", "is not a finite number"), ("zero", "trade at price 0")]:
        d = tmp_path / kind
        d.mkdir()
        quote, trade = src / f"{day}_quote.zip", src / f"{day}_trade.zip"
        if kind == "nan":
            _rezip(quote, d / quote.name, lambda lines: _set(lines, 30, 0, "nan"))
            shutil.copy(trade, d / trade.name)
            row = 30
        else:
            shutil.copy(quote, d / quote.name)

            def zero(lines):
                i = next(i for i, line in enumerate(lines) if line.split(",")[-1] == "0" and i > 50)
                _set(lines, i + 1, 1, "0")
                zero.row = i + 1

            _rezip(trade, d / trade.name, zero)
            row = zero.row
        with pytest.raises(E.LobDataError) as ei:
            read_quotes(d)
        assert ei.value.row == row and needle in ei.value.reason, ei.value.message


def test_generic_quotes_with_a_nan_time_or_a_huge_price_are_refused(tmp_path):
    from lobnet.data import read_quotes

    p = tmp_path / "top.csv"
    head = "time,bid_px,bid_sz,ask_px,ask_sz\n"
    p.write_text(head + "34200.5,10.01,100,10.02,200\nnan,10.01,100,10.02,200\n")
    with pytest.raises(E.ParseError) as ei:
        read_quotes(p, date="2020-01-02", time_unit="s")
    assert ei.value.row == 3
    p.write_text(head + "34200.5,10.01,100,10.02,200\n34201.5,1e300,100,10.02,200\n")
    with pytest.raises(E.SchemaError) as ei:
        read_quotes(p, date="2020-01-02", time_unit="s")
    assert ei.value.row == 3 and "bid_px" in ei.value.reason


@pytest.mark.realdata
def test_a_horizon_longer_than_a_fold_is_one_error_line(tmp_path):
    msg = _copy_aapl(tmp_path / "in")
    args = ["data=lobster", f"data.path={msg}", "split.unit=blocks", "split.blocks=4", "split.train_blocks=2"]
    r = _cli(tmp_path, "lobnet.cli.prepare", *args, "window=10", "labels.horizons=[600]", "output_dir=o")
    _one_error(r, "fold 0 has an empty train, validation or test block")
    r = _cli(tmp_path, "lobnet.cli.prepare", *args, "window=0", "output_dir=o")
    _one_error(r, "window must be at least 1 event")
    assert not (tmp_path / "o").exists()


# 7. the stream's artifacts go where its config says ----------------------------------------------------------------


def test_the_stream_experiment_keeps_its_artifacts_in_the_configured_location(tmp_path):
    from lobnet.tracking.runs import experiment_id

    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    eid = experiment_id(client, "s", "art")
    assert client.get_experiment(eid).artifact_location == (Path.cwd() / "art").resolve().as_uri()
    assert experiment_id(client, "s", "elsewhere") == eid  # an existing experiment is reused
    assert not (REPO / "mlruns").exists()


def test_an_interrupted_training_ends_killed_not_running(tmp_path):
    args = _overrides(tmp_path, "model=lstm", "split.max_folds=1", "trainer.max_epochs=50", "trainer.patience=50")
    p = subprocess.Popen(
        [sys.executable, "-m", "lobnet.cli.train", *args, f"hydra.run.dir={tmp_path / 'hydra'}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=tmp_path,
    )
    for line in p.stdout:  # wait until the fold trains
        if line.startswith("fold 0 epoch 0"):
            break
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=300)
    assert p.returncode != 0
    statuses = json.loads(mlflow_statuses(tmp_path))
    assert statuses == ["KILLED", "KILLED"], statuses
