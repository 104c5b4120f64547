"""Command-line options every study command shares, written once (same names, same help).

Used as parameter defaults of the typer commands: ``batch_size: Optional[int] = BATCH_SIZE``.
"""

from __future__ import annotations

import typer

BATCH_SIZE = typer.Option(
    None, "--batch-size", help="Most rows (noisy inputs, path points, images) per model call (default: automatic)."
)
MAX_MEMORY = typer.Option(
    None, "--max-memory",
    help='Memory budget of the automatic batch size, e.g. "4GB" or "25%" (default: half of the free memory).',
)
FRESH = typer.Option(False, "--fresh", help="Delete the results store in --out first.")
DEVICE = typer.Option(
    "auto", "--device", help="Where the model runs: auto (CUDA when present, else CPU), cpu, cuda, cuda:N, mps."
)
PRECISION = typer.Option(
    "float32", "--precision",
    help="Forward-pass precision: float32, or bf16/fp16 under autocast (faster on some hardware; see smoothsal.execution.precision).",
)
