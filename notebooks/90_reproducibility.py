# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Appendix: speed, memory and the machines behind the figures
#
# The chapters say how long each of their steps took. This appendix gathers what the
# scripts under `benchmarks/` measured: how fast each network of the book trains, the
# book's training loop against the plain loop of the MONAI tutorials, Mamba's selective
# scan at long sequences, the readers against the plain libraries, and how cohort
# generation scales with workers. Each benchmark measures its alternatives side by side
# in one run, so the **ratios** are the figures to read: absolute times depend on the
# machine and on what else it was doing.

# %% tags=["parameters"]
profile: str = "auto"  # "smoke" | "full" | "auto" (full on CUDA, smoke otherwise)
device: str = "auto"  # auto, cpu or cuda
seed: int = 0
records: str = ""  # folder of benchmark records; "" reads benchmarks/records in the checkout

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from stroke_lib.benchmark_records import RECORD_DIR, measured_on_gpu, read_benchmarks
from stroke_lib.page import chapter_opening, record_location
from stroke_lib.runtime import start_run

run = start_run(profile, device, seed)
folder = Path(records) if records else RECORD_DIR
chapter_opening(
    ["how fast each network of the book trains on the machine that measured it, and with how much memory;",
     "how much the book's training loop gains over the plain loop of the MONAI tutorials;",
     "what the pure-PyTorch selective scan costs against a step-by-step loop (and, where measured "
     "on a GPU, against mamba-ssm's fused kernel);",
     "how the readers compare with plain pydicom and nibabel, and cohort generation with workers;",
     "which figures were measured on a GPU and which on a CPU."],
    run, {"records": record_location(folder)}, folder, record_is="folder of benchmark records", record_verb="read from")
found, bad = read_benchmarks(folder)

# %% [markdown]
# ## Where and when each benchmark ran

# %%
ORDER = ["training_loop", "models_speed", "mamba_scan", "loaders", "cohort_generation", "disk_cache"]
names = [n for n in ORDER if n in found] + sorted(set(found) - set(ORDER))
if names:
    display(pd.DataFrame([{"benchmark": n, "device": found[n]["device_name"], "date (UTC)": found[n].get("date", "-"),
                           "torch": found[n].get("versions", {}).get("torch", "-"), "command": found[n].get("command", "-")}
                          for n in names]).set_index("benchmark"))
missing = [n for n in ORDER if n not in found]
gpu = [n for n in names if measured_on_gpu(found[n])]
lines = [f"**No record** of {', '.join(f'`{n}`' for n in missing)}: run `python benchmarks/{missing[0]}.py` "
         "(or `make benchmarks` for all) and rebuild the book." if missing else ""]
lines.append(f"Measured on a GPU: {', '.join(f'`{n}`' for n in gpu)}. Every other figure on this page is a CPU "
             "figure." if gpu else "**Every figure on this page was measured on a CPU**; none is a GPU figure. "
             "The GPU rows (the fast path of `train.fit`, the fused Mamba kernel, the full-size inputs) appear "
             "when the benchmarks are run on a machine with CUDA.")
lines += [f"**Left out**: {b}" for b in bad]
display(Markdown("\n\n".join(line for line in lines if line)))


#: Each benchmark's columns in reading order, the index first.
COLUMNS = {
    "training_loop": ["network", "input", "loop", "steps", "seconds", "steps/s", "samples/s", "x tutorial", "peak MiB"],
    "models_speed": ["network", "device", "input", "batch", "parameters", "seconds_per_batch", "min_seconds",
                     "peak_mib", "mamba"],
    "mamba_scan": ["length", "scan", "seconds", "tokens/s", "x loop", "max |diff|"],
    "loaders": ["reader", "format", "unit", "per second", "seconds", "x plain library's time"],
    "cohort_generation": ["workers", "wall s", "CPU s", "subjects/s", "x first", "MiB"],
    "disk_cache": ["task", "source", "workers", "slices/s", "x memory"],
}
COLUMNS["training_loop_full"] = COLUMNS["training_loop"]


def cell(value: object) -> str:
    """A figure as the tables show it: 3 significant digits (small ones in powers of
    ten), thousands separated, "-" for a figure not measured."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.1e}" if 0 < abs(value) < 1e-3 else f"{value:.3g}" if abs(value) < 1e3 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def show(name: str) -> pd.DataFrame | None:
    """The rows of benchmark ``name`` as a table (None when it has no record)."""
    if name not in found:
        display(Markdown(f"*No record of `{name}`.*"))
        return None
    table = pd.DataFrame(found[name]["rows"])
    order = [c for c in COLUMNS.get(name, list(table.columns)) if c in table.columns]
    shown = table[order].astype(object).map(cell)
    display(shown.set_index(order[:2] if name in ("training_loop", "training_loop_full", "mamba_scan") else order[0]))
    return table


# %% [markdown]
# ## Training: the book's loop against the MONAI-tutorial loop
#
# `benchmarks/training_loop.py` trains the same network on the same random data at a
# profile's input size (smoke; full with `--size full`) with the same augmentation and
# optimiser, once with the plain loop of the MONAI tutorials (a `Dataset` that augments each sample on the CPU, a `DataLoader`, fp32,
# the loss read back every step) and once with {py:func}`stroke_lib.train.fit` as the chapters
# call it (on CUDA its fast path: inputs on the GPU and augmented there, bf16,
# channels-last, `torch.compile` where it applies). "x tutorial" is the ratio of steps per
# second against the tutorial loop of the same network.

# %%
for name, size in (("training_loop", "smoke"), ("training_loop_full", "full")):
    if name not in found and size == "full":
        display(Markdown("*No record at the full profile's inputs* (`python benchmarks/training_loop.py --size "
                         "full`, meant for a GPU)."))
        continue
    loop = show(name)
    if loop is not None:
        fits = loop[loop["loop"] == "fit"]
        on_gpu = measured_on_gpu(found[name])
        display(Markdown(
            f"At the {size} profile's inputs on {found[name]['device_name']}, `fit`'s steps per second against the "
            "tutorial loop's: " + ", ".join(f"{r['network']} {r['x tutorial']:.2f}" for _, r in fits.iterrows())
            + (". This is the fast path's gain." if on_gpu else
               ". On a CPU `fit` runs its plain path, the reference, so ratios near 1 are what this record should "
               "show; the fast path's gain is a GPU figure, not measured here.")))

# %% [markdown]
# ## The networks: parameters, time per batch and memory
#
# `benchmarks/models_speed.py` runs one forward and backward pass per batch of 8, each
# network in its own process so that its peak memory is its own (on CPU the rise of the
# resident memory, on CUDA the allocator's peak). "min s" is the fastest of the repeats,
# the steadier figure on a shared machine.

# %%
speed = show("models_speed")

# %% [markdown]
# ## Mamba's selective scan at long sequences
#
# `benchmarks/mamba_scan.py` runs one Mamba block (the block of TRACT-NET's bottleneck,
# {py:mod}`stroke_lib.models.mamba`) with its scan computed by mambapy's parallel (Blelloch) scan,
# which the book uses without mamba-ssm, by a step-by-step loop over the sequence, and on
# CUDA with mamba-ssm installed by the fused kernel. "x loop" is the speed against the
# loop at the same length; "max |diff|" shows that all compute the same output.

# %%
scan = show("mamba_scan")
if scan is not None:
    parallel = scan[scan.scan == "parallel scan"]
    text = ", ".join(f"{r['x loop']:.1f} times at {int(r['length']):,} positions" for _, r in parallel.iterrows())
    fused = scan[scan.scan == "fused kernel"]
    display(Markdown(
        f"On {found['mamba_scan']['device_name']} the parallel scan ran at the loop's speed {text}; the largest "
        f"difference from the loop's output was {scan['max |diff|'].max():.1e}. "
        + ("The fused kernel, against the same loop: " + ", ".join(
            f"{r['x loop']:.1f} times at {int(r['length']):,}" for _, r in fused.iterrows()) + "."
           if len(fused) else "No fused-kernel figure: it needs CUDA and mamba-ssm, and this record has neither.")))

# %% [markdown]
# ## Reading the data
#
# `benchmarks/loaders.py` reads the same CT series and DWI files with the book's readers
# (which check every file and name the bad ones), with MONAI's `LoadImage` and with the
# plain libraries without checks. "x plain library's time" is the time against plain
# pydicom or nibabel on the same files: the checks' cost. The book's CT reader decodes a
# series once: "decoded before (cache folder)" is what a later chapter, another process,
# pays for it, a copy from `<data directory>/cache/ct-series` (`stroke_lib.data.read_cache`).

# %%
reads = show("loaders")

# %% [markdown]
# ## Generating the embedded cohort
#
# `benchmarks/cohort_generation.py` generates the same cohort from scratch with each
# number of worker processes; "x first" is the speed-up against the first count.

# %%
cohort = show("cohort_generation")
if cohort is not None:
    display(Markdown(
        f"{found['cohort_generation']['settings'].get('subjects', '?')} subjects: "
        + ", ".join(f"{int(r['workers'])} worker(s) {r['subjects/s']:.2f} subjects/s ({r['x first']:.2f}x)"
                    for _, r in cohort.iterrows()) + f", on {found['cohort_generation']['device_name']}."))

# %% [markdown]
# ## Training from the on-disk slice cache
#
# `benchmarks/disk_cache.py` writes the same random 2D slices into the on-disk cache of
# {py:mod}`stroke_lib.disk_cache` (float16, memory-mapped), then reads them through a
# `DataLoader` and trains a small 2D network with {py:func}`train.fit <stroke_lib.train.fit>` from the cache and from
# tensors in memory; "x memory" is the speed against the same task from memory. The cache
# had just been written, so it was read from the operating system's page cache, not the disk.

# %%
disk = show("disk_cache")

# %% [markdown]
# ## Try it yourself
#
# - `make benchmarks` runs every benchmark on this machine (on a GPU too, where there is
#   one) and writes its record into `benchmarks/records`; `make book` then re-executes this
#   page alone, since its key includes the records.
# - `python benchmarks/mamba_scan.py --lengths 1728 32768` measures the sequence lengths
#   of TRACT-NET's bottleneck at the smoke and full inputs.
# - `-p records <folder>` reads records kept elsewhere, for example a GPU machine's.
