"""Reading images and masks as users give them: OpenCV's formats, EXIF orientation, truncated JPEGs, binary masks."""

import io
from pathlib import Path
from typing import NamedTuple, Optional

import cv2
import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".png"}
LOSSY_EXTENSIONS = {".jpg", ".jpeg", ".webp"}
EXIF_ORIENTATION = 0x0112  # the tag's number
OPENCV_MAX_PIXELS = 2**30  # OpenCV's default CV_IO_MAX_IMAGE_PIXELS
Image.MAX_IMAGE_PIXELS = None  # Pillow only reads headers and EXIF here; OpenCV decodes, with its own limit


def is_truncated_jpeg(data: bytes) -> bool:
    """True when no end-of-image marker follows the last scan.

    OpenCV decodes a truncated JPEG without error, filling the missing rows with gray,
    so the structure has to be checked. Inside a scan, 0xFF is always followed by 0x00 or a
    restart marker, so 0xFFD9 after the last start-of-scan can only be the real end.
    """
    start_of_scan = data.rfind(b"\xff\xda")
    return start_of_scan < 0 or data.find(b"\xff\xd9", start_of_scan) < 0


class MaskRule(NamedTuple):
    """How mask values become foreground: --foreground_values, else --mask_threshold, else by default."""

    threshold: Optional[int] = None
    foreground: tuple = ()


def is_palette_png(data: bytes) -> bool:
    """Whether data is a PNG of palette indices (colour type 3, the byte after the bit depth in its IHDR chunk)."""
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 25 and data[25] == 3


def palette_indices(data: bytes) -> np.ndarray:
    """A palette PNG's indices, one channel (OpenCV would give the palette's colours); ValueError if it fails."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.array(image, np.uint8)
    except Exception as error:  # Pillow's errors for a broken file are of many kinds
        raise ValueError("does not decode") from error


def decode(data: bytes, path: Path, indices: bool = False) -> np.ndarray:
    """Pixels as stored: bit depth, channels and alpha kept, EXIF orientation not applied. indices: a palette PNG's
    indices rather than its colours (label masks: Pascal VOC's and most annotation tools')."""
    if path.suffix.lower() in (".jpg", ".jpeg") and is_truncated_jpeg(data):
        raise ValueError("is a truncated JPEG")
    if indices and is_palette_png(data):
        return palette_indices(data)
    try:
        array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:  # what OpenCV raises for an image above its pixel limit
        array = None
    if array is None or array.size == 0:
        raise ValueError(why_not_decoded(data))
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"has unsupported pixel type {array.dtype}")
    return array


def why_not_decoded(data: bytes) -> str:
    """Why OpenCV returned nothing: too many pixels for it, or a file it cannot read."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception:  # not even its header is readable
        return "does not decode"
    if width * height > OPENCV_MAX_PIXELS:
        return f"is {width}x{height} pixels, more than OpenCV decodes (2^30): downscale it first"
    return "does not decode"


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation tag: 1 (as stored) to 8, 1 when there is none."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            orientation = int(image.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:  # Pillow reads fewer formats than OpenCV; a file it cannot open has no EXIF to apply
        return 1
    return orientation if 1 <= orientation <= 8 else 1


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels as stored to pixels as displayed, by EXIF orientation (5 to 8 swap height and width)."""
    if orientation >= 5:
        array = array.swapaxes(0, 1)
    flips = {2: (1,), 3: (0, 1), 4: (0,), 6: (1,), 7: (0, 1), 8: (0,)}.get(orientation)
    return np.flip(array, flips) if flips else array


def read_image(path: Path, indices: bool = False) -> np.ndarray:
    """Any image OpenCV reads, as displayed (EXIF orientation applied), a palette PNG's indices if indices;
    ValueError saying why it fails."""
    data = path.read_bytes()
    return orient(decode(data, path, indices), exif_orientation(data))


def read_source(data: bytes, path: Path, what: str, indices: bool = False) -> tuple[np.ndarray, int]:
    """Pixels as stored (a palette PNG's indices if indices) and the EXIF orientation; ValueError starting with what
    ("image" or "mask")."""
    try:
        return decode(data, path, indices), exif_orientation(data)
    except ValueError as error:
        raise ValueError(f"{what} {error}") from error


def align(image: np.ndarray, image_orientation: int, mask: np.ndarray, mask_orientation: int) -> tuple:
    """Image and mask as displayed and turned alike; ValueError naming EXIF when their orientation tags
    differ and the sizes do not tell whether the mask was drawn on the photo as stored or as shown."""
    if image_orientation == mask_orientation:
        return orient(image, image_orientation), orient(mask, mask_orientation)
    shown = orient(image, image_orientation), orient(mask, mask_orientation)
    stored = orient(image, image_orientation), orient(mask, image_orientation)  # the mask drawn on stored pixels
    fits = [pair for pair in (shown, stored) if pair[0].shape[:2] == pair[1].shape[:2]]
    if len(fits) == 1:
        return fits[0]
    why = "its size fits both readings" if fits else "its size fits neither reading"
    raise ValueError(
        f"mask EXIF orientation {mask_orientation} differs from the image's {image_orientation} and {why}: "
        "save image and mask with the same orientation"
    )


def to_rgb(image: np.ndarray) -> np.ndarray:
    """8-bit, three channels: 16 bits scaled, gray widened, alpha dropped (OpenCV's BGR order)."""
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257).round().astype(np.uint8)
    if image.ndim == 2 or image.shape[2] <= 2:
        return cv2.cvtColor(image if image.ndim == 2 else image[:, :, 0], cv2.COLOR_GRAY2BGR)
    return image[:, :, :3]


def mask_layer(mask: np.ndarray) -> np.ndarray:
    """One channel: gray as it is, colour by its brightest channel, or the alpha channel when the
    colour is the same everywhere and the alpha is not (a mask drawn in the alpha channel)."""
    if mask.ndim == 2:
        return mask
    colour = mask[:, :, : 3 if mask.shape[2] >= 3 else 1]
    alpha = mask[:, :, -1] if mask.shape[2] in (2, 4) else None
    if alpha is not None and colour.min() == colour.max() and alpha.min() != alpha.max():
        return alpha
    return colour.max(axis=2)


def to_binary_mask(mask: np.ndarray, rule: Optional[MaskRule] = None, lossy: bool = False) -> np.ndarray:
    """One channel of 0 and 255. Foreground: the values of --foreground_values; else those above
    --mask_threshold; else, in a JPEG or WebP mask, those above Otsu's threshold (lossy compression
    blurs the edges); else every value but 0, when there is at most one. ValueError otherwise."""
    layer = mask_layer(mask)
    rule = rule or MaskRule()
    if rule.foreground:
        foreground = np.isin(layer, rule.foreground)
    elif rule.threshold is not None:
        foreground = layer > rule.threshold
    elif lossy and layer.dtype == np.uint8:
        threshold, _ = cv2.threshold(layer, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        foreground = layer > threshold
    else:
        values = np.flatnonzero(np.bincount(layer.ravel()))
        if len(values[values > 0]) > 1:
            shown = ", ".join(map(str, values[:6])) + (", ..." if len(values) > 6 else "")
            raise ValueError(
                f"has {len(values)} values ({shown}): name the foreground with --foreground_values "
                "(a label mask), or binarise it with --mask_threshold"
            )
        foreground = layer > 0
    return np.where(foreground, 255, 0).astype(np.uint8)
