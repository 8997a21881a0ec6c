"""Draw another k-shot training file from BANKING77's DialoGLUE training split (no validation or test rows).

    python benchmarks/draw_fewshot.py --seed 1 --shots 10 --out /tmp/train_10shot_draw1.csv

For each intent (sorted by name), ``random.Random(seed).sample`` draws ``shots`` of its rows, in file order of the
source; the result is a ``text,intent`` CSV. Used to judge few-shot settings on more than the one published draw
(``train_10shot.csv``), see ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED  # noqa: E402


def draw(source: Path, shots: int, seed: int) -> list[dict[str, str]]:
    """``shots`` rows per intent of ``source``, drawn with ``random.Random(seed)`` intent by intent (sorted)."""
    with source.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_intent: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_intent.setdefault(row["intent"], []).append(row)
    rng = random.Random(seed)
    out: list[dict[str, str]] = []
    for intent in sorted(by_intent):
        if len(by_intent[intent]) < shots:
            raise SystemExit(f"intent {intent!r} has {len(by_intent[intent])} rows, fewer than --shots {shots}")
        out += rng.sample(by_intent[intent], shots)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SHARED / "banking77" / "dialoglue_split" / "train.csv")
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = draw(args.source, args.shots, args.seed)
    with args.out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "intent"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "intent": r["intent"]} for r in rows)
    print(f"{len(rows)} rows -> {args.out}")


if __name__ == "__main__":
    main()
