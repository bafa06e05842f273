"""Request bodies to decoded images, with every limit a public endpoint needs.

Images come as multipart files or as base64 strings in a JSON object, never as a path or a URL
(a service that opens what a request names is a hole). Each image must be in a format the
project reads (siamese.data.images.IMAGE_EXTENSIONS), at most `max_pixels` pixels (checked from
the header, before decoding; Pillow's own decompression-bomb guard is set to the same limit and
its warning made an error), and decodes through the project's one decoding path, so the service
sees the numbers `siamese.predict` sees. Anything wrong is a ClientError: a 4xx status and one
line, never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import warnings
from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np
from PIL import Image

from ..data.images import IMAGE_EXTENSIONS, ImageTooLarge, decode_bytes
from ..errors import UserError

Image.init()
FORMATS = sorted({Image.registered_extensions()[e] for e in IMAGE_EXTENSIONS})
SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif",
          "WEBP": ".webp", "PPM": ".ppm"}


class ClientError(Exception):
    """A request the service refuses: HTTP `status` and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Limits:
    """Bounds on one request: body bytes, pixels per image, images per request."""

    max_body: int = 10 * 2 ** 20
    max_pixels: int = 4096 * 4096
    max_images: int = 64


def guard_pillow(max_pixels: int) -> None:
    """Pillow refuses images above `max_pixels` (its bomb guard, process-wide) and its
    DecompressionBombWarning becomes an error."""
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.simplefilter("error", Image.DecompressionBombWarning)


def image_format(data: bytes, name: str, max_pixels: int) -> str:
    """The Pillow format of an encoded image, read from its header; ClientError when it is
    empty, not an image the project reads, or above the pixel limit."""
    if not data:
        raise ClientError(400, f"{name}: empty file")
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as img:
            w, h, fmt = img.width, img.height, img.format
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ClientError(413, f"{name}: image larger than {max_pixels} pixels") from None
    except Exception:  # noqa: BLE001  any failure to read a header is the client's bytes
        raise ClientError(400, f"{name}: not an image in a format read here "
                               f"({', '.join(FORMATS)})") from None
    if w * h > max_pixels:
        raise ClientError(413, f"{name}: {w}x{h} image, more than {max_pixels} pixels")
    return fmt


def decode(data: bytes, name: str, size: Sequence[int], channels: int,
           max_pixels: int) -> np.ndarray:
    """uint8 (H, W, C) of an encoded image, as training and predict decode it (one opening:
    the format and the pixel limit are checked from the header by Pillow itself, see
    guard_pillow)."""
    if not data:
        raise ClientError(400, f"{name}: empty file")
    try:
        return decode_bytes(data, size, channels, name, FORMATS)
    except ImageTooLarge:
        raise ClientError(413, f"{name}: image larger than {max_pixels} pixels") from None
    except UserError:
        raise ClientError(400, f"{name}: not a readable image in a format read here "
                               f"({', '.join(FORMATS)})") from None
    except Exception:  # noqa: BLE001  a decoder failing on crafted bytes is still a bad image
        raise ClientError(400, f"{name}: cannot read image") from None


def _b64(value, name: str) -> bytes:
    if not isinstance(value, str):
        raise ClientError(400, f"{name}: expected a base64 string")
    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]  # a data URL
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ClientError(400, f"{name}: not valid base64") from None


def from_json(body: bytes, fields: Dict[str, bool]) -> Dict[str, List[bytes]]:
    """{field: [bytes]} of a JSON object whose `fields` hold base64 images (a list when the
    field's value in `fields` is True); other keys of the object are options, kept aside."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ClientError(400, "the body is not valid JSON") from None
    except RecursionError:  # found by fuzzing: [[[[... nested past the interpreter's limit
        raise ClientError(400, "the JSON body is nested too deeply") from None
    if not isinstance(obj, dict):
        raise ClientError(400, "the JSON body must be an object")
    out = {}
    for f, many in fields.items():
        if f not in obj:
            raise ClientError(422, f"missing field {f!r} (expected: {', '.join(fields)})")
        values = obj[f] if many else [obj[f]]
        if not isinstance(values, list) or not values:
            raise ClientError(422, f"{f}: expected a non-empty list of base64 strings")
        out[f] = [_b64(v, f"{f}[{k}]" if many else f) for k, v in enumerate(values)]
    return out


async def from_multipart(request, fields: Dict[str, bool], limits: Limits) -> Dict:
    """{field: [bytes]} of multipart/form-data files; unknown or missing fields refused."""
    try:
        form = await request.form(max_files=limits.max_images, max_fields=16,
                                  max_part_size=limits.max_body)
    except ClientError:
        raise
    except Exception as e:  # noqa: BLE001  starlette's parse errors name the problem
        raise ClientError(400, f"malformed multipart body ({str(e)[:120]})") from None
    try:
        unknown = sorted(set(form.keys()) - set(fields))
        if unknown:
            raise ClientError(422, f"unknown field {unknown[0]!r} (expected: "
                                   f"{', '.join(fields)})")
        out = {}
        for f, many in fields.items():
            parts = form.getlist(f)
            if not parts:
                raise ClientError(422, f"missing field {f!r} (expected: {', '.join(fields)})")
            if len(parts) > 1 and not many:
                raise ClientError(422, f"{f}: one file expected, got {len(parts)}")
            if any(isinstance(p, str) for p in parts):
                raise ClientError(422, f"{f}: expected a file upload, got a text field")
            out[f] = [await p.read() for p in parts]
        return out
    finally:
        await form.close()


async def read_images(request, fields: Dict[str, bool], limits: Limits) -> Dict:
    """{field: [bytes]} of a request, multipart or JSON; ClientError otherwise."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        out = await from_multipart(request, fields, limits)
        body = b""
    else:
        body = await request.body()
    if kind == "multipart/form-data":
        pass
    elif kind == "application/json":
        if not body:
            raise ClientError(400, "empty body")
        out = from_json(body, fields)
    elif not body:
        raise ClientError(400, "empty body: send multipart/form-data files or a JSON object "
                               "of base64 images")
    else:
        raise ClientError(415, f"content type {kind or 'none'!r}: send multipart/form-data "
                               f"or application/json")
    n = sum(len(v) for v in out.values())
    if n > limits.max_images:
        raise ClientError(413, f"{n} images in one request, at most {limits.max_images}")
    return out
