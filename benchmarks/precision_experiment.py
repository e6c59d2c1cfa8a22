"""float32 against bfloat16 mixed precision on the nails, in the same steps, over several seeds.

    python benchmarks/precision_experiment.py --nails ../shared/data/nails --work work/precision

Copies and prepares the nails once, then for each seed trains the small-set command from scratch in each precision
into WORK/<precision>/seed<N> and scores its best weights with predict.py on the valid photos at their own size (the
nail's micro IoU), as benchmarks/two_classes_experiment.py does for its two heads. A run already scored is not
trained again. Prints each run's IoU and training minutes, and each precision's mean and spread.
"""

import statistics
import time

from two_classes_experiment import nail_iou, parse_args, prepare  # also puts the repository on sys.path

PRECISIONS = ("float32", "bfloat16")


def main() -> None:
    args = parse_args(__doc__)
    data = args.work / "data"
    prepare(args.nails, data, [])
    results = {}
    for precision in PRECISIONS:
        results[precision] = []
        for seed in args.seeds:
            start = time.monotonic()
            iou = nail_iou(precision, seed, data, args, "--mixed_precision", precision)
            results[precision].append(iou)
            print(f"{precision} seed {seed}: nail micro IoU {iou:.4f} ({(time.monotonic() - start) / 60:.1f} min)")
    for precision, ious in results.items():
        spread = f" (min {min(ious):.4f}, max {max(ious):.4f})" if len(ious) > 1 else ""
        print(f"{precision}: nail micro IoU mean {statistics.mean(ious):.4f}{spread}")
    print(f"bfloat16 minus float32: {statistics.mean(results['bfloat16']) - statistics.mean(results['float32']):+.4f}")


if __name__ == "__main__":
    main()
