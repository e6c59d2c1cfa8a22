"""File writes that are whole or nothing, even when the process is killed half-way."""

import contextlib
import io
import os
import socket
import threading
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import cv2
import numpy as np
from PIL import Image


def is_up_to_date(source: Path, target: Path) -> bool:
    """True when target was made from source as it is now: write_image(..., made_from=source) gives
    target the modification time of source, which any later change of source alters."""
    return target.exists() and target.stat().st_mtime_ns == source.stat().st_mtime_ns


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary name beside path, of this process and thread, renamed to path when the block ends
    without error (and deleted when it fails): a kill never leaves half a file under path, and two
    runs never write the same temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # the host too: the workers of a cluster write the same caches on shared storage
    temporary = path.with_name(f".{path.name}.{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        yield temporary
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)


def write_bytes(path: Path, data: Union[bytes, memoryview], made_from: Optional[Path] = None) -> None:
    """Write whole or not at all (see replacing)."""
    with replacing(path) as temporary:
        temporary.write_bytes(data)
        if made_from is not None:
            os.utime(temporary, ns=(time.time_ns(), made_from.stat().st_mtime_ns))


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_image(path: Path, array: np.ndarray, made_from: Optional[Path] = None) -> None:
    """Write in the format of path's suffix, whole or not at all (see write_bytes)."""
    ok, encoded = cv2.imencode(path.suffix, array)
    if not ok:
        raise ValueError(f"cannot be encoded as {path.suffix}")
    write_bytes(path, encoded.tobytes(), made_from)


def write_palette_png(path: Path, indices: np.ndarray, palette: Sequence[tuple]) -> None:
    """A PNG of palette indices (uint8) that image viewers show in the palette's RGB colours, whole or not at all."""
    image = Image.fromarray(indices.astype(np.uint8))  # mode L; putpalette makes it P
    image.putpalette([value for rgb in palette for value in rgb])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    write_bytes(path, buffer.getvalue())


def write_array(path: Path, array: np.ndarray, made_from: Optional[Path] = None) -> None:
    """Write in NumPy's .npy format, whatever path's suffix, whole or not at all (see write_bytes)."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_bytes(path, buffer.getbuffer(), made_from)
