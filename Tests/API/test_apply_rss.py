"""RSS stays flat over 10 000 applies: Benchmarks/apply-rss/apply_rss.py drives a real `molt serve` through
the Control API (each apply a reload of memorylock: new generation, state handoff, switch, destroy) and
exits 1 when VmRSS grows more than 2 MiB after a 500-apply warm-up. It grew ~0.9 MiB per 1000 applies
(to ~18 MiB, then flat) while every plugin step's timeout held a dispatch timer for its whole length."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "Benchmarks" / "apply-rss" / "apply_rss.py"


def test_rss_is_flat_over_ten_thousand_applies(molt_bin, plugins_dir):
    done = subprocess.run([sys.executable, str(SCRIPT), "--molt", str(molt_bin), "--plugins-dir", str(plugins_dir),
                           "--applies", "10000", "--every", "2500", "--max-growth-kib", "2048"],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    summary = [line for line in done.stdout.splitlines() if line.startswith("summary:")]
    assert done.returncode == 0 and summary, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"
