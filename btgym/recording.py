"""Record stream items to WebDataset-style tar shards, and read them back without btgym.

A sample is a group of files sharing a key ``<env_id>-<episode>-<step>`` inside a tar:

* ``KEY.png``: the observation when it is an ``(H, W, 3) uint8`` image, else ``KEY.obs.npy``;
* ``KEY.json``: ``env_id``, ``episode``, ``step``, ``seed``, ``params`` and the ``info``,
  where every numpy array or scalar is replaced by ``{"npy": NAME}`` or ``{"npz": NAME}``;
* ``KEY.NAME.npy``: the small arrays (``numpy.save``, ``allow_pickle=False``);
* ``KEY.NAME.npz``: arrays of :data:`COMPRESS_BYTES` or more (masks, depth, normals),
  compressed losslessly (``numpy.savez_compressed``, the array under the name
  ``array``: ``numpy.load(f)["array"]``). Measured on Parts-v0 frames at 320x240: see
  ``docs/streaming.md``.

PNG, JSON, NPY, NPZ and tar are read by any tool (``webdataset``, ``tar``, numpy, PIL);
nothing is pickled. Shards are written as ``shard-NNNNNN.tar.partial`` and renamed to
``.tar`` when complete, so a crash loses at most the open shard.

Recording directories are made by the writer (0755) or must be ones no other user can
change (:class:`~btgym.errors.UntrustedPathError` otherwise); shard files are created
with ``O_EXCL | O_NOFOLLOW``, so nothing planted there is written through. The reader
trusts no declared size: a member larger than ``max_member_bytes`` or reaching past the
end of its shard is refused before a byte of it is read.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
from PIL import Image

from btgym.errors import ConfigError, LimitError
from btgym.wire._private_files import trusted_directory

#: The largest member (one file of a sample) :class:`ShardReader` reads by default.
DEFAULT_MAX_MEMBER_BYTES = 256 << 20

#: Arrays at least this large are written compressed (``.npz``); smaller ones as ``.npy``.
COMPRESS_BYTES = 4096


class ShardWriter:
    """Writes samples into tar shards of ``shard_size`` samples each under ``directory``."""

    def __init__(self, directory: str | os.PathLike[str], shard_size: int = 1000) -> None:
        if shard_size < 1:
            raise ConfigError(f"expected shard_size >= 1, got {shard_size}")
        self.directory = Path(trusted_directory(directory, "the recording directory", mode=0o755))
        self.shard_size = shard_size
        self.shards: list[Path] = []
        self._tar: tarfile.TarFile | None = None
        self._file: Any = None
        self._partial: Path | None = None
        self._count = 0
        self._keys: set[str] = set()

    def write(self, item: dict[str, Any]) -> str:
        """Add one stream item; return its key."""
        key = f"{int(item['env_id']):03d}-{int(item['episode']):06d}-{int(item['step']):05d}"
        if key in self._keys:
            raise ConfigError(f"expected unique samples, got key {key} twice")
        self._keys.add(key)
        if self._tar is None:
            self._open_shard()
        files: dict[str, bytes] = {}
        obs = np.asarray(item["obs"])
        if obs.dtype == np.uint8 and obs.ndim == 3 and obs.shape[2] == 3:
            buffer = io.BytesIO()
            Image.fromarray(obs).save(buffer, format="PNG", compress_level=1)
            files[f"{key}.png"] = buffer.getvalue()
        else:
            files[f"{key}.obs.npy"] = _npy(obs)
        arrays: dict[str, bytes] = {}
        meta = {
            "env_id": int(item["env_id"]),
            "episode": int(item["episode"]),
            "step": int(item["step"]),
            "seed": int(item["seed"]),
            "params": _to_json(item.get("params"), "params", arrays),
            "info": _to_json(item.get("info", {}), "info", arrays),
        }
        files[f"{key}.json"] = json.dumps(meta).encode()
        for name, data in arrays.items():
            files[f"{key}.{name}"] = data
        assert self._tar is not None
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            self._tar.addfile(info, io.BytesIO(data))
        self._count += 1
        if self._count >= self.shard_size:
            self._finish_shard()
        return key

    def close(self) -> None:
        """Complete the open shard (idempotent)."""
        if self._tar is not None:
            self._finish_shard()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_shard(self) -> None:
        index = len(self.shards)
        self._partial = self.directory / f"shard-{index:06d}.tar.partial"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self._partial, flags, 0o644)
        except FileExistsError:  # a crashed recording's shard: ours, in our own directory
            os.unlink(self._partial)  # unlink never follows a symlink
            fd = os.open(self._partial, flags, 0o644)
        self._file = os.fdopen(fd, "wb")
        self._tar = tarfile.open(fileobj=self._file, mode="w")  # noqa: SIM115 - many writes
        self._count = 0

    def _finish_shard(self) -> None:
        assert self._tar is not None and self._partial is not None
        self._tar.close()
        self._file.close()  # tarfile leaves a given file object open
        final = self._partial.with_suffix("")  # drop ".partial"
        os.replace(self._partial, final)
        self.shards.append(final)
        self._tar = None


def record(
    items: Iterable[dict[str, Any]],
    directory: str | os.PathLike[str],
    shard_size: int = 1000,
    limit: int | None = None,
) -> list[Path]:
    """Write ``items`` (e.g. a :class:`btgym.data.StreamDataset`) to shards; return them."""
    with ShardWriter(directory, shard_size) as writer:
        for count, item in enumerate(items):
            if limit is not None and count >= limit:
                break
            writer.write(item)
    return writer.shards


class ShardReader:
    """Random access to the samples of the complete shards in ``directory``.

    ``max_member_bytes``: the largest file of a sample it reads (256 MiB by default); a
    shard declaring a larger one, one reaching past the shard's end, or a member that
    is not a plain file (a link, a sparse member) is refused with
    :class:`~btgym.errors.LimitError` / :class:`~btgym.errors.ConfigError` when the
    shard is indexed, before any of it is read.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
    ) -> None:
        self.shards = sorted(Path(directory).glob("shard-*.tar"))
        self.max_member_bytes = max_member_bytes
        self.index: list[tuple[int, dict[str, tuple[int, int]]]] = []
        for number, shard in enumerate(self.shards):
            samples: dict[str, dict[str, tuple[int, int]]] = {}
            with open(shard, "rb") as raw:
                file = cast(IO[bytes], _BoundedReads(raw, max_member_bytes, shard))
                tar = tarfile.TarFile(fileobj=file, mode="r")
                shard_bytes = os.fstat(raw.fileno()).st_size
                for member in tar:
                    self._check(shard, member, shard_bytes)
                    key, _, suffix = member.name.partition(".")
                    samples.setdefault(key, {})[suffix] = (member.offset_data, member.size)
            self.index.extend((number, files) for files in samples.values())
        self._fds: dict[int, int] = {}

    def _check(self, shard: Path, member: tarfile.TarInfo, shard_bytes: int) -> None:
        """Refuse a member that is not a plain file or whose declared size cannot be right."""
        if not member.isreg() or member.issparse():
            raise ConfigError(
                f"expected plain files in the shard {shard}, got {member.name!r} "
                f"(tar type {member.type!r}{', sparse' if member.issparse() else ''})"
            )
        if member.size > self.max_member_bytes:
            raise LimitError(
                f"expected members of at most max_member_bytes={self.max_member_bytes} "
                f"bytes in the shard {shard}, got {member.name!r} declaring {member.size}"
            )
        if member.offset_data + member.size > shard_bytes:
            raise ConfigError(
                f"expected {member.name!r} in the shard {shard} to end within its "
                f"{shard_bytes} bytes, got one declared to end at "
                f"{member.offset_data + member.size} (a truncated or forged shard)"
            )

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        number, files = self.index[i]
        raw = {suffix: self._read(number, *where) for suffix, where in files.items()}
        meta = json.loads(raw["json"])
        arrays = {
            suffix[: -len(".npy")]: np.load(io.BytesIO(data), allow_pickle=False)
            for suffix, data in raw.items()
            if suffix.endswith(".npy")
        }
        for suffix, data in raw.items():
            if suffix.endswith(".npz"):
                with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                    arrays[suffix[: -len(".npz")]] = archive["array"]
        if "png" in raw:
            # np.array, not asarray: Pillow's buffer is read-only, and torch warns on those.
            obs = np.array(Image.open(io.BytesIO(raw["png"])).convert("RGB"))
        else:
            obs = arrays["obs"]
        return {
            "obs": obs,
            "info": _from_json(meta["info"], arrays),
            "env_id": meta["env_id"],
            "episode": meta["episode"],
            "step": meta["step"],
            "seed": meta["seed"],
            "params": _from_json(meta["params"], arrays),
        }

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    def _read(self, number: int, offset: int, size: int) -> bytes:
        # Sizes were checked at indexing: at most max_member_bytes, within the shard.
        # pread keeps no file position, so forked DataLoader workers can share the fds.
        fd = self._fds.get(number)
        if fd is None:
            fd = self._fds[number] = os.open(self.shards[number], os.O_RDONLY)
        return os.pread(fd, size, offset)

    def close(self) -> None:
        """Close the shard files opened so far (they reopen on the next read)."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __getstate__(self) -> dict[str, Any]:  # spawned workers open their own files
        return {**self.__dict__, "_fds": {}}


class _BoundedReads:
    """A shard file whose single reads are bounded: ``tarfile`` reads a PAX or GNU long-name
    header whole, at the size it declares, before any member can be checked.
    """

    def __init__(self, file: Any, limit: int, shard: Path) -> None:
        self._file, self._limit, self._shard = file, limit, shard

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self._limit:
            raise LimitError(
                f"expected tar headers of at most max_member_bytes={self._limit} bytes in "
                f"the shard {self._shard}, got one declaring {size}"
            )
        return bytes(self._file.read(size))

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._file.seek(offset, whence))

    def tell(self) -> int:
        return int(self._file.tell())


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def _npz(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, array=np.asarray(array))
    return buffer.getvalue()


def _to_json(value: Any, path: str, arrays: dict[str, bytes]) -> Any:
    """JSON-able copy of ``value``; arrays and numpy scalars go to ``arrays`` by file name
    (large numeric arrays compressed, ``.npz``; others ``.npy``).
    """
    if isinstance(value, np.ndarray | np.generic):
        array = np.asarray(value)
        if array.nbytes >= COMPRESS_BYTES and array.dtype.kind in "biuf":
            arrays[f"{path}.npz"] = _npz(array)
            return {"npz": path}
        arrays[f"{path}.npy"] = _npy(array)
        return {"npy": path, "scalar": isinstance(value, np.generic)}
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str) or "." in key:
                raise ConfigError(f"expected info keys as strings without '.', got {key!r}")
        return {"map": {k: _to_json(v, f"{path}-{k}", arrays) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return [_to_json(v, f"{path}-{i}", arrays) for i, v in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ConfigError(f"expected JSON-able or numpy values in a recorded item, got {type(value)}")


def _from_json(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, dict) and "npz" in value:
        return arrays[value["npz"]]
    if isinstance(value, dict) and "npy" in value:
        array = arrays[value["npy"]]
        return array[()] if value.get("scalar") else array
    if isinstance(value, dict):
        return {k: _from_json(v, arrays) for k, v in value["map"].items()}
    if isinstance(value, list):
        return [_from_json(v, arrays) for v in value]
    return value


__all__ = ["COMPRESS_BYTES", "ShardReader", "ShardWriter", "record"]
