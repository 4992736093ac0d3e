"""The launch-info file ``btgym serve --info`` writes, and the servers a trainer reaches with it.

:class:`LaunchInfo` is the file's one format: ``serve`` writes it, and
:class:`btgym.BlenderEnv`, :class:`btgym.BlenderVectorEnv` and
:class:`btgym.data.StreamDataset` read it through :func:`running_servers`, the one
place that turns ``address=`` / ``addresses=`` / ``launch_info=`` into the addresses of
servers that are already running.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from btgym.errors import ConfigError, VersionMismatchError
from btgym.wire._private_files import check_owned_file, replace_owned_file
from btgym.wire.protocol import PROTOCOL_VERSION

#: Address schemes a string names a server by (anything else is a file path).
_SCHEMES = ("tcp://", "ipc://", "inproc://")


@dataclass(frozen=True)
class LaunchInfo:
    """Where ``btgym serve`` put its instances: what a trainer elsewhere needs to reach them.

    ``addresses``: one per instance; ``scene`` and ``blend_file``: what they serve;
    ``server_public_key``: the path of the server's CURVE public key (None without
    CURVE); ``seeds``: each instance's seed; ``protocol``: the protocol version they speak;
    ``blender``: per instance, its Blender version and graphics backend (as in ``hello``).
    """

    scene: str
    addresses: list[str]
    blend_file: str | None = None
    server_public_key: str | None = None
    seeds: list[int] | None = None
    protocol: int = PROTOCOL_VERSION
    blender: list[dict[str, Any] | None] | None = None

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> LaunchInfo:
        """The launch info in ``path``; a :class:`VersionMismatchError` for another protocol.

        The file names the servers the trainer will talk to, so it must be one only this
        user can change (:class:`~btgym.errors.UntrustedPathError` otherwise: another
        user's file, a symlink, a file others can write, or one in a directory another
        user could change); copy a file another user gave you to a place of your own.
        """
        data = json.loads(Path(check_owned_file(path, "the launch-info file")).read_text())
        if not isinstance(data, dict):
            raise ConfigError(f"expected a JSON object in {path}, got {type(data).__name__}")
        if data.get("protocol") != PROTOCOL_VERSION:
            raise VersionMismatchError(PROTOCOL_VERSION, data.get("protocol"), "server")
        known = {f.name for f in dataclasses.fields(cls)}
        missing = sorted({"scene", "addresses"} - set(data))
        if missing:
            raise ConfigError(f"expected {missing} in the launch info {path}, got {sorted(data)}")
        return cls(**{key: value for key, value in data.items() if key in known})

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write it to ``path`` as JSON (what :meth:`read` and other languages read).

        Always a new file of ours, renamed into place: an existing file of another user
        or a symlink at ``path``, or a directory another user could change, is refused
        with :class:`~btgym.errors.UntrustedPathError` (they could rewrite the addresses).
        """
        data = json.dumps(self.to_dict(), indent=2).encode()
        replace_owned_file(path, data, "the launch-info file")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the file holds."""
        return {
            "protocol": self.protocol,
            "scene": self.scene,
            "blend_file": self.blend_file,
            "addresses": list(self.addresses),
            "server_public_key": self.server_public_key,
            "seeds": self.seeds,
            "blender": self.blender,
        }


def is_address(value: Any) -> bool:
    """Whether ``value`` is a server address (``tcp://``, ``ipc://``, ``inproc://``)."""
    return isinstance(value, str) and value.startswith(_SCHEMES)


def running_servers(
    *,
    address: str | None = None,
    addresses: Sequence[str] | None = None,
    launch_info: str | os.PathLike[str] | LaunchInfo | None = None,
    name: Any = None,
) -> list[str] | None:
    """The addresses of servers that are already running, or None when none is given.

    ``address`` (one server), ``addresses`` or ``launch_info`` (a :class:`LaunchInfo` or
    its file); ``name``: what an entry point was given in place of a scene, which counts
    as an address when it is one or as a launch-info file when it names an existing
    ``.json`` file. At most one of them may be given.
    """
    given: list[Any] = []
    if address is not None:
        given.append([address])
    if addresses is not None:
        given.append(addresses)
    if launch_info is not None:
        given.append(launch_info)
    if is_address(name):
        given.append([name])
    elif isinstance(name, str) and name.endswith(".json") and os.path.isfile(name):
        given.append(name)
    if len(given) > 1:
        raise ConfigError(
            "expected one of an address, addresses= or launch_info=, got several "
            f"(address={address!r}, addresses={addresses!r}, launch_info={launch_info!r}, "
            f"scene={name!r})"
        )
    if not given:
        return None
    source = given[0]
    if isinstance(source, str | os.PathLike):
        source = LaunchInfo.read(source)
    if isinstance(source, LaunchInfo):
        source = source.addresses
    found = [str(one) for one in source]
    if not found:
        raise ConfigError("expected at least one server address, got none")
    return found


def load_launch_info_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The launch info in ``path`` as a dict (what the deprecated
    ``btgym.cli.load_launch_info`` returned); use :meth:`LaunchInfo.read`.
    """
    return LaunchInfo.read(path).to_dict()


__all__ = ["LaunchInfo", "is_address", "load_launch_info_dict", "running_servers"]
