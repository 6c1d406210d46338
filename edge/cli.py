"""``stainless-edge``: run the daemon, watch what it publishes, ask its status, measure it on the bench.

::

    stainless-edge run --config deploy/configs/sim.toml [--model PATH] [--fields N] [--exit-when-done]
    stainless-edge watch --out DIR [--endpoint tcp://127.0.0.1:5556] [--count N] [--fields N] [--json]
    stainless-edge status [--endpoint tcp://127.0.0.1:5557] [--json]
    stainless-edge keys --out DIR [--name NAME] [--json]        # a CURVE key pair (NAME.key, NAME.key_secret)
    stainless-edge calibrate --config C [--out PATH] [--recipe R] [--json]  # per-LED exposure + flat fields
    stainless-edge flash BUNDLE [--on-device] [--force] [--json]  # hot-switch the running daemon's model
    stainless-edge rollback [--json]                              # back to the previous model
    stainless-edge models [--json]                                # slots, current, previous, self-tests

Against a CURVE daemon ([security]), watch, status, flash, rollback and models take
--client-key NAME.key_secret --server-key server.key.
    stainless-edge eval-detector [--fields 12] [--json]          # recall / precision vs simulator truth
    stainless-edge calibrate-fidelity [--fields 6] [--json]      # suspect thresholds from nucleus removals
    stainless-edge profile --bundle B [--backend auto] [--batch 1,8,32] [--fields 60] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.client import ClientKeys

from core.config import ConfigError
from edge.device.errors import EdgeError
from edge.device.journal import setup_logging

log = logging.getLogger("edge.cli")


def _run(args: argparse.Namespace) -> int:
    from edge.device.app import Pipeline
    from edge.device.build import build_pipeline
    from edge.device.config import load_config
    from edge.device.sdnotify import Notifier
    from edge.device.service import Service, open_exporter
    from edge.device.stack import FieldRequest

    cfg = load_config(args.config)
    if args.model:
        m = Path(args.model)
        onnx, bundle = (str(m), "") if m.suffix == ".onnx" else ("", str(m))
        cfg = cfg.replace(model=dataclasses.replace(cfg.model, onnx=onnx, bundle=bundle))
    scan = cfg.scan
    if args.fields is not None:
        scan = dataclasses.replace(scan, autostart_fields=args.fields)
    if args.exit_when_done:
        scan = dataclasses.replace(scan, exit_when_done=True)
    setup_logging(cfg.daemon.log_level)
    log.info("config: %s", json.dumps(cfg.to_dict(), default=str))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    pipe: Pipeline
    if cfg.camera.url.startswith("sim://") or cfg.virtual_bench.send_truth:  # the virtual bench (needs sim)
        from edge.bench.daemon import build_bench_pipeline

        pipe = build_bench_pipeline(cfg)
    else:
        pipe = build_pipeline(cfg)
    try:
        exporter = open_exporter(cfg.metrics, pipe)
    except BaseException:
        pipe.shutdown()
        raise
    service = Service(pipe, Notifier(), exporter).start()
    try:
        if scan.autostart_fields:
            w, _h = cfg.virtual_bench.field_size_px
            px = pipe.camera.pixel_um
            pipe.submit([FieldRequest(scan.slide_id, i, (i * w * px, 0.0)) for i in range(scan.autostart_fields)])
        while not stop.is_set() and not pipe.failed.is_set():
            service.tick()
            if scan.exit_when_done and pipe.wait_idle(0.2):
                break
            stop.wait(0.2)
    finally:
        log.info("shutting down: %s", json.dumps(pipe.status()["counters"]))
        service.stop()
    if pipe.failed.is_set():
        log.critical("exiting with status 1: %s", pipe.failure)
        return 1
    return 0


def _add_key_options(p: argparse.ArgumentParser) -> None:
    """``--client-key`` / ``--server-key``: talk CURVE to a daemon with ``[security]`` keys."""
    p.add_argument("--client-key", type=Path, help="this client's secret key file (NAME.key_secret) for a CURVE daemon")
    p.add_argument("--server-key", type=Path, help="the daemon's public key file (server.key) for a CURVE daemon")


def _client_keys(args: argparse.Namespace) -> ClientKeys | None:
    """The CURVE keys of ``--client-key`` / ``--server-key`` (both or neither), or None for plain text."""
    if args.client_key is None and args.server_key is None:
        return None
    if args.client_key is None or args.server_key is None:
        raise ConfigError("--client-key and --server-key go together: give both for a CURVE daemon, or neither")
    from edge.client import load_client_keys

    return load_client_keys(args.client_key, args.server_key)


def _keys(args: argparse.Namespace) -> int:
    from edge.device.security import make_keys

    res = make_keys(args.out, args.name)
    print(json.dumps(res) if args.json else
          f"public key {res['public_key_file']} (give it to the daemon's [security] allowed_clients or the clients)\n"
          f"secret key {res['secret_key_file']} (keep it private: mode 0600)")
    return 0


def _watch(args: argparse.Namespace) -> int:
    from edge.client.watch import watch

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    report = watch(args.endpoint, Path(args.out), stop, count=args.count, fields=args.fields, keep=args.keep,
                   columns=args.columns, progress=None if args.json else lambda line: print(line, flush=True),
                   control=args.control, curve=_client_keys(args))
    print(json.dumps(report) if args.json else "\n".join(f"{k}: {v}" for k, v in report.items()))
    return 0


def _status(args: argparse.Namespace) -> int:
    from edge.client import ControlClient

    with ControlClient(args.endpoint, timeout=args.timeout, curve=_client_keys(args)) as ctl:
        st = ctl.call("status")
    if args.json:
        print(json.dumps(st, default=str))
    else:
        print(f"{st['state']}: {st['fields_pending']} field(s) pending; model {st['model']['name']} "
              f"{st['model']['version']} on {st['model']['backend']}{' (DEGRADED)' if st['model']['degraded'] else ''}")
        if props := st["model"].get("plugin_properties"):
            print(f"runs with: {_properties_text(props)}")
        print(f"counters: {st['counters']}\nbatching: {st['batching']}\npublisher: {st['publisher']}")
        if "spool" in st:
            print(f"spool: {st['spool']}")
        for k, v in st["latency_ms"].items():
            print(f"  {k:24s} p50 {v['p50']:9.2f} ms  p99 {v['p99']:9.2f} ms  (n={v['n']})")
    return 0


def _update(args: argparse.Namespace) -> int:
    from edge.client import ControlClient
    from edge.client.updates import follow

    if args.cmd == "flash":
        bundle = Path(args.bundle)
        req: dict[str, object] = {"path": str(bundle)} if args.on_device else {"bundle": _read_bundle(bundle)}
        if args.force:
            req["force"] = True
    else:
        req = {}
    with ControlClient(args.endpoint, timeout=args.timeout, curve=_client_keys(args)) as ctl:
        final = follow(ctl, args.cmd, req, args.wait, on_state=None if args.json else lambda s: print(s, flush=True))
    if args.json:
        print(json.dumps(final, default=str))
    elif "error" in final:
        print(f"{final['error']['code']}: {final['error']['message']}")
    ok = final["state"] == "committed" or (args.cmd == "rollback" and final["state"].startswith("rolled back"))
    return 0 if ok else 1


def _read_bundle(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read bundle {path}: {exc.strerror}; give a NAME-VERSION.stainless file "
                          "(or --on-device with a path on the device)") from exc


def _models(args: argparse.Namespace) -> int:
    from edge.client import ControlClient

    with ControlClient(args.endpoint, timeout=args.timeout, curve=_client_keys(args)) as ctl:
        listing = ctl.call("models")
    if args.json:
        print(json.dumps(listing, default=str))
        return 0
    run = listing["running"]
    print(f"running {run['name']} {run['version']} on {run['backend']}; update: {listing['model_update']['state']}")
    print(f"install root {listing['root']}: current {listing['current']}, previous {listing['previous']}")
    for s in listing["slots"]:
        mark = "*" if s["slot"] == listing["current"] else "-" if s["slot"] == listing["previous"] else " "
        print(f" {mark} {s['slot']:32s} installed {s['installed'] or '?':25s} signer {s['signer'] or '?'}")
        for line in s["self_test"]:
            print(f"     self-test {line}")
    return 0


def _eval_detector(args: argparse.Namespace) -> int:
    from edge.bench.simbench import evaluate_detector

    res = evaluate_detector(fields=args.fields, size_px=args.size, seed=args.seed, wbc_per_mm2=args.density)
    print(json.dumps(res) if args.json else "\n".join(f"{k}: {v}" for k, v in res.items()))
    return 0


def _check_scan(args: argparse.Namespace) -> int:
    from edge.bench.replaycheck import check_scan
    from edge.device.config import load_config

    cfg = load_config(args.config) if args.config else None
    res = check_scan(args.scan, cfg.qc if cfg else None, cfg.detector if cfg else None)
    if args.json:
        print(json.dumps(res))
        return 0
    for f in res["fields"]:
        print(f"field {f['field']}: {f['planes']} planes, QC flags {f['qc_flags'] or 'none'} {f['qc_metrics']}, "
              f"{f['detections']} white-cell detections")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from edge.bench.simbench import calibrate_fidelity

    if args.model is None:
        res = calibrate_fidelity(fields=args.fields, size_px=args.size, seed=args.seed)
    else:
        from edge.device.config import ModelConfig
        from edge.device.model import open_model
        from firmware_bridge.rigs import get_profile

        model = open_model(ModelConfig(bundle=str(args.model)), get_profile("thesis-43"))
        try:
            res = calibrate_fidelity(fields=args.fields, size_px=args.size, seed=args.seed, model=model)
        finally:
            model.close()
    print(json.dumps(res) if args.json else "\n".join(f"{k}: {v}" for k, v in res.items()))
    return 0


def _calibrate_leds(args: argparse.Namespace) -> int:
    from edge.device.calibration import calibrate, load_calibration, write_calibration
    from edge.device.config import load_config
    from firmware_bridge.client import open_led_array
    from firmware_bridge.link import LinkConfig
    from firmware_bridge.recipes import resolve_recipe

    cfg = load_config(args.config)
    out = args.out or cfg.calibration.path
    if not out:
        raise ConfigError("calibrate: no output file; set [calibration] path in the config or pass --out PATH")
    setup_logging("WARNING" if args.json else cfg.daemon.log_level)
    with open_led_array(cfg.led.url, config=LinkConfig(timeout_s=cfg.led.timeout_s)) as led:
        recipe = resolve_recipe(args.recipe or _model_recipe(cfg, led), led.geometry())
        if cfg.camera.url.startswith("sim://"):  # the virtual bench (needs sim)
            from edge.bench.daemon import open_bench_camera

            camera = open_bench_camera(cfg, led)
        else:
            from edge.device.cameras import open_camera

            camera = open_camera(cfg.camera.url, cfg.camera)
        try:
            cal = calibrate(led, camera, recipe, cfg.calibration, cfg.camera.timeout_s)
        finally:
            camera.close()
    path = write_calibration(cal, out)
    res = {"path": str(path), **load_calibration(path, recipe).summary()}
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"calibration {res['id']} for recipe {recipe.id} written to {path} (flat fields: {len(cal.flat_field)})")
    for name, c in res["channels"].items():
        print(f"  {name:11s} {c['exposure_ms']:10.3f} ms  gain {c['gain']:5.2f}  level {c['level']:.3f}  "
              f"saturated {c['saturated_fraction']:.4f}  {c['status']}")
    return 0


def _model_recipe(cfg: Any, led: Any) -> str:
    """The recipe id of the configured model (opened once, then closed)."""
    from edge.device.model import open_model

    model = open_model(cfg.model, led.geometry())
    try:
        return model.spec.recipe.id
    finally:
        model.close()


def _control_options(p: argparse.ArgumentParser, func: object) -> argparse.ArgumentParser:
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5557")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each reply")
    p.add_argument("--json", action="store_true")
    _add_key_options(p)
    p.set_defaults(func=func)
    return p


def _profile(args: argparse.Namespace) -> int:
    from edge.bench.device import describe_device
    from edge.bench.pipeline import BenchModel, run

    batches = tuple(int(b) for b in args.batch.split(",") if b.strip())
    if not batches or min(batches) < 1:
        raise ConfigError(f"--batch {args.batch!r}: expected comma-separated positive batch sizes, e.g. 1,8,32")
    model = BenchModel(bundle=str(args.bundle), backend=args.backend, precision=args.precision, threads=args.threads)
    res = {"device": describe_device(), **run(model, fields=args.fields, max_batch=args.max_batch, batches=batches)}
    if args.json:
        print(json.dumps(res))
        return 0
    print(_profile_text(res))
    return 0


def _properties_text(props: dict[str, str]) -> str:
    """``KEY=value, ...`` of a backend's :attr:`~edge.device.inference.ModelRunner.plugin_properties`."""
    return ", ".join(f"{k}={v}" for k, v in props.items())


def _profile_text(res: dict[str, Any]) -> str:
    d, b, lat = res["device"], res["backend"], res["latency"]
    lines = [f"device: {d['cpu']['model']} ({d['cores_available']} cores; {' '.join(d['cpu']['flags'])}); "
             f"GPUs {d['gpus'] or 'none'}; {d['versions']}",
             f"model {b['model']} on {b['reason']}",
             *([f"runs with: {_properties_text(b['plugin_properties'])}"] if b.get("plugin_properties") else []),
             f"pipeline: {res['cells_per_s']} cells/s, backend alone {res['backend_alone_cells_per_s']} cells/s "
             f"(ratio {res['ratio_pipeline_to_backend']}); batch {res['avg_batch_size']:.2f}, "
             f"{res['batch_buffers']} batch buffers",
             f"capture end -> on the wire p50 {lat['capture_end_to_sent_p50_ms']} ms at {lat['interval_ms']} ms "
             f"per field (budget {lat['latency_budget_ms']} ms); saturated "
             f"{res['saturated_capture_end_to_sent_p50_ms']} ms",
             f"processing per field p50: {res['process_work_p50_ms']} ms wall, {res['process_cpu_p50_ms']} ms CPU; "
             f"CPU per cell: pipeline {res['cpu_ms_per_cell']['pipeline']} ms, backend alone "
             f"{res['cpu_ms_per_cell']['backend_alone']} ms",
             f"resident memory {res['rss_mb'][0]} -> {res['rss_mb'][-1]} MB; at fields "
             + ", ".join(f"{f}: {mb}" for f, mb in res["rss_mb_at_fields"].items()),
             "stage                     p50 ms    p99 ms"]
    lines += [f"  {k:22s} {v['p50']:9.2f} {v['p99']:9.2f}" for k, v in res["stages_ms"].items()]
    lines += ["backend alone: batch  ms/batch  ms/cell  cells/s"]
    lines += [f"  {r['batch']:19d} {r['ms_per_batch_p50']:9.2f} {r['ms_per_cell_p50']:8.3f} {r['cells_per_s']:8.1f}"
              for r in b["batches"]]
    lines += [f"  where batch {r['batch']}'s time goes, ms per cell: "
              + ", ".join(f"{k} {v:.3f}" for k, v in list(r["layers_ms_per_cell"].items())[:5])
              for r in b["batches"] if r.get("layers_ms_per_cell")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="stainless-edge", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="run the daemon")
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--model", help="override [model]: a .stainless bundle, an install root or an .onnx")
    p.add_argument("--fields", type=int, help="scan this many fields at start (virtual bench)")
    p.add_argument("--exit-when-done", action="store_true", help="exit once the autostarted scan is published")
    p.set_defaults(func=_run)
    p = sub.add_parser("watch", help="subscribe, write a gallery PNG, print rate and latency")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5556")
    p.add_argument("--count", type=int, help="stop after this many cells")
    p.add_argument("--fields", type=int, help="stop after this many field summaries")
    p.add_argument("--keep", type=int, default=64, help="cells shown in the gallery (most recent)")
    p.add_argument("--columns", type=int, default=0, help="gallery tiles per row (0: about 16 panels)")
    p.add_argument("--control", help="the daemon's control endpoint: fill gaps through `replay`")
    p.add_argument("--json", action="store_true")
    _add_key_options(p)
    p.set_defaults(func=_watch)
    p = sub.add_parser("status", help="ask a running daemon for its status")
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5557")
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--json", action="store_true")
    _add_key_options(p)
    p.set_defaults(func=_status)
    p = sub.add_parser("flash", help="flash a model bundle into the running daemon (verify, self-test, switch)")
    p.add_argument("bundle", help="the NAME-VERSION.stainless file (sent in the request; see --on-device)")
    p.add_argument("--on-device", action="store_true", help="BUNDLE is a path on the daemon's machine: send the path")
    p.add_argument("--force", action="store_true", help="allow an older version than the highest committed")
    p.add_argument("--wait", type=float, default=600.0, help="seconds to follow the update (default 600)")
    p = _control_options(p, _update)
    p = sub.add_parser("rollback", help="switch the running daemon back to the previous model")
    p.add_argument("--wait", type=float, default=600.0, help="seconds to follow the update (default 600)")
    p = _control_options(p, _update)
    p = sub.add_parser("models", help="installed model slots, current, previous and self-test results")
    _control_options(p, _models)
    p = sub.add_parser("keys", help="make a CURVE key pair for the daemon or a client ([security])")
    p.add_argument("--out", required=True, type=Path, help="directory for NAME.key and NAME.key_secret")
    p.add_argument("--name", default="client", help="key name: the daemon knows a client by it (default: client)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_keys)
    p = sub.add_parser("check-scan", help="QC and detector on every field of a raw scan (replay://)")
    p.add_argument("scan", type=Path, help="raw-scan folder, e.g. from `stainless-sim import-real`")
    p.add_argument("--config", type=Path, help="daemon config whose [qc] and [detector] to use (default: built-in)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_check_scan)
    p = sub.add_parser("calibrate", help="per-LED auto-exposure and flat fields, written to [calibration] path")
    p.add_argument("--config", required=True, type=Path, help="daemon config: LED array, camera, [calibration]")
    p.add_argument("--out", type=Path, help="calibration JSON to write (default: [calibration] path)")
    p.add_argument("--recipe", help="recipe to calibrate (default: the configured model's)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_calibrate_leds)
    for name, fn, fields in (("eval-detector", _eval_detector, 12), ("calibrate-fidelity", _calibrate, 6)):
        p = sub.add_parser(name, help=f"virtual bench: {name.replace('-', ' ')}")
        p.add_argument("--fields", type=int, default=fields)
        p.add_argument("--size", type=int, default=256, help="field edge (px)")
        p.add_argument("--seed", type=int, default=11)
        if name == "eval-detector":
            p.add_argument("--density", type=float, default=1500.0, help="white cells per mm²")
        else:
            p.add_argument("--model", type=Path, help="calibrate on this model's stains (bundle or .onnx) "
                           "instead of the simulator's true stain")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=fn)
    p = sub.add_parser("profile", help="virtual bench: per-stage table of the pipeline and the backend alone")
    p.add_argument("--bundle", required=True, type=Path, help="the model bundle (.stainless) to profile")
    p.add_argument("--backend", default="auto",
                   choices=("auto", "onnxruntime", "onnxruntime-cuda", "tensorrt", "openvino"))
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8", "bf16"))
    p.add_argument("--threads", type=int, default=0, help="inference threads (0: the runtime's default)")
    p.add_argument("--batch", default="1,8,32", help="batch sizes of the backend-alone table")
    p.add_argument("--max-batch", type=int, default=8, help="the pipeline's [batching] max_batch")
    p.add_argument("--fields", type=int, default=60, help="fields through the pipeline (throughput phase)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_profile)
    args = ap.parse_args(argv)
    try:
        return int(args.func(args))
    except (EdgeError, ConfigError) as exc:
        print(f"stainless-edge: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
