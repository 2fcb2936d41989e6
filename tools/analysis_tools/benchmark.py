"""Inference speed (images/s) of a detection/segmentation config, batch size 1.

    python tools/analysis_tools/benchmark.py CONFIG [--checkpoint CKPT] [--shape H [W]]
        [--max-iter 200] [--num-warmup 5] [--log-interval 50] [--repeat-num 1] [--cfg-options ...]

Without ``--shape`` it runs the config's test dataloader (data loading excluded from the timing,
pre-processing + model + post-processing included, like mmdet's ``--task inference``); with
``--shape H W`` it feeds a random image of that size (no data set needed). Runs on the GPU when there
is one. Weights do not change the speed; ``--checkpoint`` is there to time a trained model's real
post-processing (the number of boxes after NMS depends on the weights).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner, load_checkpoint

from parcnetv2.cli import add_debug_argument, run_cli
from parcnetv2.openmmlab.config import load_config
from parcnetv2.openmmlab.runner import build_bare_model
from parcnetv2.openmmlab.task import task_of
from parcnetv2.openmmlab.weights_only import allow_mmengine_checkpoints


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Inference FPS of a ParCNetV2 detector or segmentor")
    parser.add_argument("config", help="config file path")
    parser.add_argument("--checkpoint", help="checkpoint file (optional)")
    parser.add_argument("--shape", type=int, nargs="+", help="random input of H W instead of the test data")
    parser.add_argument("--max-iter", type=int, default=200, help="timed images")
    parser.add_argument("--num-warmup", type=int, default=5, help="untimed images first")
    parser.add_argument("--log-interval", type=int, default=50)
    parser.add_argument(
        "--repeat-num", type=int, default=1, help="repeat the measurement, report mean and std"
    )
    parser.add_argument("--fp16", action="store_true", help="autocast to float16 (CUDA)")
    parser.add_argument(
        "--cfg-options", nargs="+", action=DictAction, help="override config settings, key=value"
    )
    add_debug_argument(parser)
    return parser.parse_args(argv)


def _batches(args: argparse.Namespace, cfg: Config) -> Iterator[dict]:
    if args.shape:
        height, width = (args.shape * 2)[:2] if len(args.shape) == 1 else args.shape[:2]
        samples = [task_of(cfg).data_sample(height, width)]
        image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8)
        while True:
            yield dict(inputs=[image], data_samples=samples)
    loader_cfg = cfg.test_dataloader.copy()
    loader_cfg.batch_size = 1
    loader = Runner.build_dataloader(loader_cfg)
    while True:
        yield from loader


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(args: argparse.Namespace, cfg: Config, model: torch.nn.Module, device: torch.device) -> float:
    batches = _batches(args, cfg)
    autocast = torch.autocast(device.type, dtype=torch.float16, enabled=args.fp16 and device.type == "cuda")
    elapsed, timed = 0.0, 0
    for i in range(args.num_warmup + args.max_iter):
        data = next(batches)
        _sync(device)
        start = time.perf_counter()
        with torch.no_grad(), autocast:
            model.test_step(data)
        _sync(device)
        if i >= args.num_warmup:
            elapsed += time.perf_counter() - start
            timed += 1
            if timed % args.log_interval == 0:
                print(
                    f"done image [{timed:4d}/{args.max_iter}], fps: {timed / elapsed:.2f} img/s", flush=True
                )
    return timed / elapsed


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    allow_mmengine_checkpoints()
    cfg = load_config(args.config, cfg_options=args.cfg_options)
    model = build_bare_model(cfg)
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, map_location="cpu")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    fps = []
    for run in range(args.repeat_num):
        fps.append(measure(args, cfg, model, device))
        print(f"run {run + 1}: overall fps {fps[-1]:.2f} img/s, {1000 / fps[-1]:.1f} ms/img", flush=True)
    mean = sum(fps) / len(fps)
    std = (sum((f - mean) ** 2 for f in fps) / len(fps)) ** 0.5
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"{args.config}: {mean:.2f} +- {std:.2f} img/s on {name} "
        f"(batch 1, {args.max_iter} images x {args.repeat_num})"
    )
    return dict(fps=mean, fps_std=std, device=name)


if __name__ == "__main__":
    run_cli(main, sys.argv[1:], prog="tools/analysis_tools/benchmark.py")
