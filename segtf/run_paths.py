"""Where a run writes: every file and folder of WORK/tensorflow/, for the training, the checkpoints, the
cross-validation and the exports alike."""

import dataclasses
from datetime import datetime
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class RunPaths:
    """Every file and folder a run writes, under root (WORK/tensorflow/)."""

    root: Path
    best: Path  # weights/best-weight_<backbone>.h5: the best --monitor
    last: Path  # weights/last-weight_<backbone>.h5
    history: Path  # logs/history.csv: a row an epoch
    pictures: Path  # logs/validation_pictures.png
    curves: Path  # logs/training_curves.png
    tensorboard: Path  # logs/tensorboard/<start time>/
    backup: Path  # what --resume continues from, while the run is under way
    final: Path  # the backup after the last epoch, which --resume --epochs M continues
    pending: Path  # each epoch's files before they are committed (checkpoints.py)
    config: Path  # run_config.json
    out_of_fold: Path  # with --folds: the best weights' probabilities of the fold's validation images

    def moved_to(self, root: Path) -> "RunPaths":
        """The same files under another root, but the backup, which stays where it is."""
        moved = {f.name: root / getattr(self, f.name).relative_to(self.root) for f in dataclasses.fields(self)}
        return RunPaths(**{**moved, "root": root, "backup": self.backup})


def work_paths(work_dir: Path, backbone: str) -> RunPaths:
    root = work_dir / "tensorflow"
    return RunPaths(
        root=root,
        best=root / "weights" / f"best-weight_{backbone}.h5",
        last=root / "weights" / f"last-weight_{backbone}.h5",
        history=root / "logs" / "history.csv",
        pictures=root / "logs" / "validation_pictures.png",
        curves=root / "logs" / "training_curves.png",
        tensorboard=root / "logs" / "tensorboard" / datetime.now().strftime("%Y%m%d-%H%M%S"),
        backup=root / "backup",
        final=root / "final",
        pending=root / "pending",
        config=root / "run_config.json",
        out_of_fold=root / "out_of_fold",
    )
