"""Speed and memory of the oversized convolution's paths, and of the ParCNetV2-T backbone (issue 3).

    python tools/analysis_tools/benchmark_oc.py [--threads 2] [--repeats 5] [--skip-memory]  # the table
    python tools/analysis_tools/benchmark_oc.py --baseline /path/to/other/checkout  # (0) side by side

(Fitting the cost model to this machine: ``tools/analysis_tools/calibrate_oc.py``.)

The table: (0) the Python function calls of one ``OversizedConv2d(64, 111)`` forward at a seen
(2, 64, 56, 56) input, inference and training (a plain ``sys.setprofile`` count), and the eager
training step of ``parcnetv2_xt`` at 32x32 batch 32 (the built-in classifier's size), each in a
fresh process per run, ``--runs`` runs, alternating with the checkout given by ``--baseline`` (run
with its own ``.venv``) when one is; (1) each OC of ParCNetV2-T (adaptive kernels, batch 1) at
224x224, 512x512 and 800x1333, direct ``F.conv2d`` against the automatically chosen path, forward
and forward+backward;
(2) the peak memory of each path, and of a whole ParCNetV2-T forward+backward at 800x1333 (batch 2)
with automatic against all-direct paths, adaptive and fixed kernels; (3) the ParCNetV2-T backbone's
forward (``features_only``) against timm's ``convnext_tiny`` on the same input; (4) both compiled
with ``torch.compile`` (inductor, ``fullgraph=True``), forward and forward+backward at 224x224 and
800x1333, against eager ParCNetV2-T (``--skip-compiled`` leaves out this slow part). The eager training
step and training peak memory against ``convnext_tiny`` (fp32 and bf16) are ``benchmark_deploy.py``'s.

Times are medians of ``--repeats`` runs (4x as many for the 224x224 backbone forward) after a
warm-up, the compared functions interleaved run by run; peak memory as ``benchmark_common.py``
measures it (a fresh process per row). The load average is printed at start and end: on a shared machine,
two-thread timings suffer when other processes deschedule a thread that an op waits for.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import timm
import torch
from benchmark_common import (
    TINY_DIMS,
    feature_step,
    machine,
    median_times,
    oc_inputs,
    oc_runner,
    peak_in_subprocess,
    stage_sizes,
)

import parcnetv2  # noqa: F401  (registers the ParCNetV2 models in timm)
from parcnetv2.backbone.oc_cost import PATHS
from parcnetv2.backbone.oc_plan import plan_oc_paths
from parcnetv2.cli import add_debug_argument, run_cli

INPUT_SIZES = ((224, 224), (512, 512), (800, 1333))
TARGETS = {
    **{f"compiled_{kind}_{size}": 1.2 for kind in ("forward", "fwd+bwd") for size in (224, 800)},
    **{f"compiled_vs_eager_{kind}_{size}": 1.0 for kind in ("forward", "fwd+bwd") for size in (224, 800)},
    "oc_forward": 10.0,
    "oc_train": 5.0,
    "backbone_224": 1.2,  # the training-speed issue's targets (the compile issue asked 1.3 / 1.2)
    "backbone_800": 1.1,
    "memory": 1.5,
    "memory_fixed": 1.5,
}


# ----------------------------------------------------------------------------------------- helpers
# ----------------------------------------------------------------------------------------- overhead
# Run as ``python -c`` by this checkout's interpreter and by the baseline's (which imports its own
# parcnetv2), so it uses only what both have: OversizedConv2d and the timm model name.
_OVERHEAD_PROBE = """
import json, os, statistics, sys, time
import timm, torch
import parcnetv2
from parcnetv2.backbone import OversizedConv2d

torch.set_num_threads(int(sys.argv[1]))
root = os.path.dirname(os.path.dirname(os.path.abspath(parcnetv2.__file__)))

def calls(fn):
    seen = []
    def profile(frame, event, arg):
        if event == "call":
            seen.append(frame.f_code.co_filename)
    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    seen = seen[1:]  # the lambda
    ours = {f for f in seen if f.startswith(root) and "/.venv/" not in f}
    return len(seen), len(ours)

torch.manual_seed(0)
oc, x = OversizedConv2d(64, 111), torch.randn(2, 64, 56, 56)
result = {}
for grad in (False, True):
    with torch.set_grad_enabled(grad):
        oc(x), oc(x)
        result["train" if grad else "inference"] = calls(lambda: oc(x))
model = timm.create_model("parcnetv2_xt").train()
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
images, labels = torch.randn(32, 3, 32, 32), torch.randint(0, 1000, (32,))
times = []
for step in range(3 + int(sys.argv[2])):
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(images), labels).backward()
    optimizer.step()
    times.append(time.perf_counter() - start)
result["xt_step"] = statistics.median(times[3:])
print(json.dumps(result))
"""


def _probe(python: str, cwd: str, threads: int, steps: int) -> dict:
    command = [python, "-c", _OVERHEAD_PROBE, str(threads), str(steps)]
    out = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def overhead_table(baseline: str | None, runs: int, threads: int, steps: int = 15) -> None:
    """(0): Python calls of one OC forward at a seen input, and the XT 32 px training step, per checkout."""
    checkouts = {"this checkout": (sys.executable, str(parcnetv2.REPO_ROOT))}
    if baseline:
        checkouts = {"baseline": (os.path.join(baseline, ".venv", "bin", "python"), baseline), **checkouts}
    results: dict[str, list[dict]] = {name: [] for name in checkouts}
    for _ in range(runs):  # alternating fresh processes, so that load changes hit both alike
        for name, (python, cwd) in checkouts.items():
            results[name].append(_probe(python, cwd, threads, steps))
    print(f"\n## (0) Per-call overhead ({runs} fresh processes each, alternating; step: median of {steps})\n")
    print(
        "| checkout | Python calls / files, OC(64, 111) forward at a seen 2x64x56x56, inference "
        "| same, training | parcnetv2_xt training step, 32x32 batch 32 (median, min-max over runs) |"
    )
    print("|---|---|---|---|")
    for name, rows in results.items():
        steps_ms = [r["xt_step"] * 1e3 for r in rows]
        (calls, files), (train_calls, train_files) = rows[0]["inference"], rows[0]["train"]
        step = f"{statistics.median(steps_ms):.1f} ms ({min(steps_ms):.1f}-{max(steps_ms):.1f})"
        print(f"| {name} | {calls} / {files} | {train_calls} / {train_files} | {step} |", flush=True)
    if baseline:
        pairs = [
            b["xt_step"] / t["xt_step"]
            for b, t in zip(results["baseline"], results["this checkout"], strict=True)
        ]
        print(
            f"\nXT 32 px training step, baseline / this checkout: {statistics.median(pairs):.2f}x "
            f"(per-run pairs {min(pairs):.2f}-{max(pairs):.2f}x)"
        )


# ----------------------------------------------------------------------------------------- table
def oc_table(repeats: int) -> dict[str, float]:
    """Direct vs chosen path for every OC of ParCNetV2-T at the three input sizes."""
    print("\n## Oversized convolution: direct F.conv2d vs automatic path (ParCNetV2-T, adaptive, batch 1)\n")
    print(
        "| input | stage | C x H x W | paths fwd / train (H, W) | direct fwd | auto fwd | speed-up "
        "| direct fwd+bwd | auto fwd+bwd | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    results = {}
    for height, width in INPUT_SIZES:
        for stage, ((h, w), channels) in enumerate(zip(stage_sizes(height, width), TINY_DIMS, strict=True)):
            shape = (1, channels, h, w)
            plan_fwd = plan_oc_paths(shape, 2 * h - 1, 2 * w - 1, "cpu", training=False)
            plan_train = plan_oc_paths(shape, 2 * h - 1, 2 * w - 1, "cpu", training=True)
            fwd_inputs = oc_inputs(channels, h, w, grad=False)
            fwd = median_times(
                {
                    "direct": oc_runner(fwd_inputs, "direct", False),
                    "auto": oc_runner(fwd_inputs, "auto", False),
                },
                repeats,
            )
            train_inputs = oc_inputs(channels, h, w, grad=True)
            train = median_times(
                {
                    "direct": oc_runner(train_inputs, "direct", True),
                    "auto": oc_runner(train_inputs, "auto", True),
                },
                repeats,
            )
            key = f"{height}x{width}/{stage + 1}"
            results[key] = (fwd["direct"] / fwd["auto"], train["direct"] / train["auto"])
            print(
                f"| {height}x{width} | {stage + 1} | {channels}x{h}x{w} | {'/'.join(plan_fwd)} ; "
                f"{'/'.join(plan_train)} | {fwd['direct'] * 1e3:.1f} ms | {fwd['auto'] * 1e3:.1f} ms "
                f"| {results[key][0]:.1f}x | {train['direct'] * 1e3:.1f} ms | {train['auto'] * 1e3:.1f} ms "
                f"| {results[key][1]:.1f}x |",
                flush=True,
            )
    return {"oc_forward": results["800x1333/1"][0], "oc_train": results["800x1333/1"][1]}


def backbone_table(repeats: int) -> dict[str, float]:
    """ParCNetV2-T features vs convnext_tiny features, forward only, eval, no grad."""
    print("\n## Backbone forward (features_only, eval, batch 1): ParCNetV2-T vs timm convnext_tiny\n")
    print(
        "| input | ParCNetV2-T adaptive | ParCNetV2-T fixed | convnext_tiny | ratio adaptive | ratio fixed |"
    )
    print("|---|---|---|---|---|---|")
    torch.manual_seed(0)
    models = {
        "adaptive": timm.create_model("parcnetv2_tiny", features_only=True, oc_mode="adaptive").eval(),
        "fixed": timm.create_model("parcnetv2_tiny", features_only=True, oc_mode="fixed").eval(),
        "convnext": timm.create_model("convnext_tiny", features_only=True).eval(),
    }
    ratios = {}
    for height, width in ((224, 224), (800, 1333)):
        x = torch.randn(1, 3, height, width)

        def run(model: torch.nn.Module, x: torch.Tensor = x) -> Callable[[], None]:
            def forward() -> None:
                with torch.no_grad():
                    model(x)

            return forward

        # a 224 forward takes ~0.15 s, so it gets 4x the runs: its median is the one noise moves most
        runs = repeats * 4 if height * width <= 512 * 512 else repeats
        times = median_times({name: run(model) for name, model in models.items()}, runs)
        adaptive, fixed = times["adaptive"] / times["convnext"], times["fixed"] / times["convnext"]
        ratios[f"backbone_{height}"] = adaptive
        print(
            f"| {height}x{width} | {times['adaptive'] * 1e3:.0f} ms | {times['fixed'] * 1e3:.0f} ms "
            f"| {times['convnext'] * 1e3:.0f} ms | {adaptive:.2f}x | {fixed:.2f}x |",
            flush=True,
        )
    return ratios


def compiled_table(repeats: int) -> dict[str, float]:
    """torch.compile (inductor) of ParCNetV2-T and convnext_tiny features, forward and forward+backward."""
    print("\n## torch.compile (inductor, static shapes, batch 1): ParCNetV2-T vs timm convnext_tiny\n")
    print(
        "| input | step | ParCNetV2-T eager | ParCNetV2-T compiled | convnext_tiny compiled "
        "| compiled / eager | ratio compiled | compile time (ours / convnext) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    ratios = {}
    for height, width in ((224, 224), (800, 1333)):
        x = torch.randn(1, 3, height, width)
        for train in (False, True):
            torch._dynamo.reset()
            torch.manual_seed(0)
            ours = timm.create_model("parcnetv2_tiny", features_only=True).train(train)
            convnext = timm.create_model("convnext_tiny", features_only=True).train(train)
            steps, compile_s = {"eager": feature_step(ours, x, train)}, {}
            for name, model in (("ours", ours), ("convnext", convnext)):
                step = feature_step(torch.compile(model, fullgraph=True), x, train)
                start = time.perf_counter()
                step()  # compiles
                compile_s[name] = time.perf_counter() - start
                steps[name] = step
            runs = repeats * 4 if height * width <= 512 * 512 else repeats
            times = median_times(steps, runs)
            speedup, ratio = times["ours"] / times["eager"], times["ours"] / times["convnext"]
            kind = "fwd+bwd" if train else "forward"
            ratios[f"compiled_{kind}_{height}"] = ratio
            ratios[f"compiled_vs_eager_{kind}_{height}"] = speedup
            print(
                f"| {height}x{width} | {kind} | {times['eager'] * 1e3:.0f} ms | {times['ours'] * 1e3:.0f} ms "
                f"| {times['convnext'] * 1e3:.0f} ms | {speedup:.2f}x | {ratio:.2f}x "
                f"| {compile_s['ours']:.0f} s / {compile_s['convnext']:.0f} s |",
                flush=True,
            )
    return ratios


def memory_table(threads: int) -> dict[str, float]:
    print("\n## Peak memory (growth of peak RSS over the inputs, fresh process per row)\n")
    print("| workload | path | peak memory |")
    print("|---|---|---|")
    (h, w), channels = stage_sizes(800, 1333)[0], TINY_DIMS[0]
    for path in ("direct", *[p for p in PATHS if p != "direct"], "auto"):
        peak = peak_in_subprocess("oc", path, threads)
        print(f"| OC fwd+bwd, 1x{channels}x{h}x{w} | {path} | {peak:.0f} MiB |", flush=True)
    peaks = {}
    for mode in ("adaptive", "fixed"):
        for path in ("direct", "auto"):
            peaks[mode, path] = peak_in_subprocess(mode, path, threads)
            label = f"ParCNetV2-T ({mode}) fwd+bwd, 2x3x800x1333"
            print(f"| {label} | {path} | {peaks[mode, path]:.0f} MiB |", flush=True)
    return {
        "memory": peaks["adaptive", "auto"] / peaks["adaptive", "direct"],
        "memory_fixed": peaks["fixed", "auto"] / peaks["fixed", "direct"],
    }


def report(results: dict[str, float]) -> None:
    print("\n## Targets\n")
    print("| target | measured | goal | met |")
    print("|---|---|---|---|")
    rows = [
        ("OC 800x1333 stage 1, forward speed-up", "oc_forward", ">="),
        ("OC 800x1333 stage 1, forward+backward speed-up", "oc_train", ">="),
        ("backbone forward / convnext_tiny, 224x224", "backbone_224", "<="),
        ("backbone forward / convnext_tiny, 800x1333", "backbone_800", "<="),
        ("fwd+bwd peak memory auto / direct, 800x1333 batch 2", "memory", "<="),
        ("same, fixed kernels", "memory_fixed", "<="),
        *[
            (f"compiled {kind} / compiled convnext_tiny, {size}", f"compiled_{kind}_{size}", "<=")
            for kind in ("forward", "fwd+bwd")
            for size in (224, 800)
        ],
        *[
            (f"compiled / eager ParCNetV2-T {kind}, {size}", f"compiled_vs_eager_{kind}_{size}", "<=")
            for kind in ("forward", "fwd+bwd")
            for size in (224, 800)
        ],
    ]
    for label, key, op in rows:
        if key not in results:
            continue
        value, goal = results[key], TARGETS[key]
        met = value >= goal if op == ">=" else value <= goal
        print(f"| {label} | {value:.2f}x | {op} {goal}x | {'yes' if met else 'NO'} |")


# ----------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (default 5)")
    parser.add_argument("--skip-memory", action="store_true", help="leave out the peak-memory table")
    parser.add_argument(
        "--skip-compiled",
        action="store_true",
        help="leave out the torch.compile table (minutes of compiling)",
    )
    parser.add_argument(
        "--baseline", default=None, help="another checkout (with its .venv) for table (0), side by side"
    )
    parser.add_argument("--runs", type=int, default=3, help="table (0): fresh processes per checkout")
    parser.add_argument("--only-overhead", action="store_true", help="print table (0) only")
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"# Machine: {machine()}")
    overhead_table(args.baseline, args.runs, args.threads)
    if args.only_overhead:
        return
    results = oc_table(args.repeats)
    if not args.skip_memory:
        results.update(memory_table(args.threads))
    results.update(backbone_table(args.repeats))
    if not args.skip_compiled:
        results.update(compiled_table(args.repeats))
    report(results)
    print(f"\n# load average at end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    run_cli(main, sys.argv[1:], prog="benchmark_oc")
