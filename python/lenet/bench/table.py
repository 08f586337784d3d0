"""The side-by-side table that ``lenet-bench`` prints, for the CPU and the CUDA benchmark."""

from __future__ import annotations

from .measure import Row


def print_table(rows: list[Row], fraction_label: str = "% sgemm") -> None:
    """The side-by-side table, one block per batch size; ``fraction_label`` names what the last
    column is a fraction of (the measured sgemm rate here, the GPU's FP32 peak for CUDA)."""
    head = f"{'batch':>6}  {'engine':<20} {'config':<36} {'images/s':>13} {'p50 us':>10} " \
           f"{'p99 us':>10} {'vs best peer':>12} {fraction_label:>8}"
    print(head)
    print("-" * len(head))
    last = None
    for r in rows:
        if last is not None and r.batch != last:
            print()
        last = r.batch
        ratio = f"{r.ratio_to_best_peer:.2f}x" if r.ratio_to_best_peer is not None else "-"
        frac = f"{100 * r.fraction_of_sgemm:.1f}%" if r.fraction_of_sgemm is not None else "-"
        p99 = f"{1e3 * r.p99_ms:>10,.1f}" if r.p99_ms is not None else f"{'-':>10}"
        print(f"{r.batch:>6}  {r.engine:<20} {r.config[:36]:<36} {r.images_per_s:>13,.0f} "
              f"{1e3 * r.p50_ms:>10,.1f} {p99} {ratio:>12} {frac:>8}")
