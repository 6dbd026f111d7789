"""Reading back what each tracker wrote, with the tracker's own reader: TensorBoard's
EventAccumulator, MLflow's MlflowClient, and W&B's offline run file (its record log,
parsed with W&B's own protobuf schema; wandb no longer ships a Python reader of it)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any


def tensorboard_run(logdir: Path) -> dict[str, Any]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    scalars = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
    texts = {
        t: acc.Tensors(t)[-1].tensor_proto.string_val[0].decode()
        for t in acc.Tags()["tensors"]
        if acc.Tensors(t)[-1].tensor_proto.string_val
    }
    return {"scalars": scalars, "texts": texts, "hparams": _hparams(acc)}


def _hparams(acc: Any) -> dict[str, Any]:
    """The HParams session's values, through the plugin's own data proto."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams").get("_hparams_/session_start_info")
    if content is None:
        return {}
    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    values = {}
    for name, v in data.session_start_info.hparams.items():
        kind = v.WhichOneof("kind")
        values[name] = getattr(v, kind)
    return values


def mlflow_runs(store: Path, experiment: str) -> list[Any]:
    """The live (not deleted) runs of ``experiment`` in a file store, with a client."""
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=Path(store).resolve().as_uri())
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id]) if exp else []
    return [(client, r) for r in runs]


def wandb_records(path: Path) -> list[Any]:
    """The records of a ``run-<id>.wandb`` file: a LevelDB-style log (a 7-byte header
    ``:W&B`` + magic 0xBEE1 + version, then 32 KiB blocks of chunks with a 7-byte header:
    crc32, length, type FULL=1 FIRST=2 MIDDLE=3 LAST=4)."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1, (ident, magic)
    block, pos, buf, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        buf += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            records.append(record)
            buf = b""
    return records


def wandb_run(directory: Path) -> dict[str, Any]:
    """One offline run's name, tags, config, history rows and final summary."""
    files = sorted(Path(directory).glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    out: dict[str, Any] = {"history": [], "summary": {}, "config": {}}
    for r in wandb_records(files[0]):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out["name"], out["project"] = r.run.display_name, r.run.project
            out["tags"] = list(r.run.tags)
            for item in r.run.config.update:
                out["config"][item.key] = json.loads(item.value_json)
        elif kind == "history":
            row = {}
            for item in r.history.item:
                k = item.key or "/".join(item.nested_key)
                row[k] = json.loads(item.value_json)
            out["history"].append(row)
        elif kind == "summary":
            for item in r.summary.update:
                k = item.key or "/".join(item.nested_key)
                out["summary"][k] = json.loads(item.value_json)
        elif kind == "exit":
            out["exit_code"] = r.exit.exit_code
    return out
