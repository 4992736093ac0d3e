"""The dataset API: :class:`StreamDataset` (live frames from Blender instances) and
:class:`ReplayDataset` (a recorded stream).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from btgym._env_shared import pop_events
from btgym._launch_config import LaunchConfig, resolve_launch
from btgym._launch_info import running_servers
from btgym._registry import resolve_target
from btgym.data._info import Info
from btgym.data._params import ParamsLayout
from btgym.data._seqlock import SharedRows, fence
from btgym.data._stream import IDLE_TIMEOUT, Stream
from btgym.errors import ConfigError
from btgym.recording import DEFAULT_MAX_MEMBER_BYTES, ShardReader
from btgym.sensor import SensorModel
from btgym.wire import protocol


class StreamDataset(IterableDataset):
    """An endless (or ``items``-long) stream from ``num_instances`` instances of an env id.

    ``env_id``: a registered btgym id (``btgym/Cube-v0``) or a scene spec (``module:Class``
    or ``path/to/script.py:Class``), launched here; ``blend_file``: a ``.blend`` each
    instance opens before building the scene. Or servers that are already running:
    ``addresses=[...]`` (or an address as ``env_id``), or ``launch_info=`` the file ``btgym
    serve --info`` wrote (addresses and server key; pass ``curve=`` client keys for CURVE
    servers). ``env_kwargs`` go to the scene. ``params``: the initial action (randomization
    parameters) for every instance; for a ``Box`` action space they can be changed while
    streaming with :meth:`set_params`, also from the main process while ``DataLoader``
    workers stream. ``items``: total number of items across all workers (``None``: endless).
    Instance ``i``'s first episode is reset with a seed derived from ``seed`` and ``i``;
    later episodes get seeds drawn by the scene; every item carries its episode's seed.
    ``depth``: requests queued per instance (renders overlap the transfer and the training).
    ``frames_per_request``: steps asked for in one request (one round trip, one message):
    per-message costs are shared, which matters for cheap frames; at most ``depth *
    frames_per_request`` unconsumed items per instance (8 by default: a ``set_params`` shows
    in items at most 8 frames later). ``launch``: a
    :class:`~btgym._launch_config.LaunchConfig`, the same for every btgym entry point
    (``LaunchConfig(backend="ray", num_cpus=1)`` puts the instances in Ray actors);
    ``timeout``, ``start_timeout`` and ``curve`` replace its fields when given, and
    ``launch_options`` is a deprecated mapping of its fields. ``timeout`` (default 30 s)
    bounds each request from when it is sent, so it covers the ``depth - 1`` requests queued
    ahead of it. ``recycle_after_episodes`` / ``recycle_rss_mb``: replace an instance by a
    fresh process at an episode's end after that many episodes, or above that many MiB.
    Instance seeds come from ``seed`` (``launch.seed`` is not used).

    Epochs: each pass over the dataset (each ``iter``, in every worker) is a new epoch
    with its own episode seeds and sampled actions, so a second pass shows new frames;
    :meth:`set_epoch` (as ``DistributedSampler``'s) makes the next pass epoch ``n`` again.
    ``idle_timeout`` (default :data:`IDLE_TIMEOUT`, 300 s; ``None``: never): a stream
    not iterated for that long closes its instances, and relaunches them (new episodes)
    at its next item; closing the iterator (or its garbage collection) closes them at once.

    ``sensor``: a :class:`~btgym.sensor.SensorModel` (or its ranges by name) that every
    frame passes through in the worker that streams it: shot and read noise, blur,
    vignetting, exposure, gamma, JPEG, drawn per frame from the ranges; ``item["sensor"]``
    echoes the values drawn (:data:`btgym.sensor.SENSOR_NAMES` order), the same seed
    gives the same frames. :meth:`set_sensor_params` changes the ranges while streaming.
    """

    def __init__(
        self,
        env_id: str | None = None,
        num_instances: int | None = None,
        *,
        addresses: Sequence[str] | None = None,
        launch_info: str | os.PathLike[str] | None = None,
        blend_file: str | os.PathLike[str] | None = None,
        items: int | None = None,
        seed: int = 0,
        params: Any = None,
        env_kwargs: dict[str, Any] | None = None,
        timeout: float | None = None,
        start_timeout: float | None = None,
        depth: int = 2,
        frames_per_request: int = 4,
        curve: Any = None,
        launch: LaunchConfig | None = None,
        launch_options: dict[str, Any] | None = None,
        recycle_after_episodes: int | None = None,
        recycle_rss_mb: float | None = None,
        idle_timeout: float | None = IDLE_TIMEOUT,
        sensor: SensorModel | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if idle_timeout is not None and idle_timeout <= 0:
            raise ConfigError(f"expected idle_timeout > 0 seconds or None, got {idle_timeout}")
        if items is not None and items < 0:
            raise ConfigError(f"expected items >= 0 or None, got {items}")
        self.addresses = running_servers(addresses=addresses, launch_info=launch_info, name=env_id)
        target = None
        if self.addresses is not None:
            if env_kwargs or blend_file:
                raise ConfigError(
                    "expected no env_kwargs or blend_file for servers that are already running "
                    f"({self.addresses}): they were built where they were launched"
                )
            if num_instances not in (None, len(self.addresses)):
                raise ConfigError(
                    f"expected num_instances to match the {len(self.addresses)} addresses, "
                    f"got {num_instances}"
                )
            self.scene = None
            num_instances = len(self.addresses)
        else:
            if env_id is None:
                raise ConfigError("expected an env id or scene spec, addresses= or launch_info=")
            # The id's registered keywords, split as gymnasium.make splits them.
            target = resolve_target(env_id)
            self.scene = target.spec
        num_instances = 1 if num_instances is None else num_instances
        if num_instances < 1:
            raise ConfigError(f"expected num_instances >= 1, got {num_instances}")
        self.env_kwargs = {**(target.scene_kwargs if target else {}), **(env_kwargs or {})}
        # A .blend belongs to the launch, not to the scene's constructor.
        blend_file = self.env_kwargs.pop("blend_file", None) or blend_file
        self.num_instances = num_instances
        if not 1 <= frames_per_request <= protocol.MAX_STEPS_PER_REQUEST:
            raise ConfigError(
                f"expected 1 <= frames_per_request <= {protocol.MAX_STEPS_PER_REQUEST}, got "
                f"{frames_per_request}"
            )
        self.depth, self.frames_per_request = depth, frames_per_request
        self.recycle_after_episodes, self.recycle_rss_mb = recycle_after_episodes, recycle_rss_mb
        #: How instances start; each worker's seed comes from ``seed`` and its ids.
        keywords = {
            "timeout": timeout,
            "start_timeout": start_timeout,
            "curve": curve,
            "blend_file": None if blend_file is None else os.fspath(blend_file),
        }
        if target is not None:
            self.launch = target.launch_config(launch, launch_options, **keywords)
        else:
            self.launch = resolve_launch(launch, launch_options, **keywords)
        self.items = items
        self.seed = seed
        self.idle_timeout = idle_timeout
        self.initial_params = params
        #: The streams this process is iterating now (for introspection and tests).
        self.streams: list[Stream] = []
        # The feedback channel: one row of parameters per instance in shared memory, so
        # that DataLoader workers (forked or spawned) see what the main process sets.
        # Each row behind a seqlock: a worker never reads a mix of two set_params calls.
        self._shared: SharedRows | None = None
        # The action space's bounds in the params layout, written by the first stream that
        # shook hands (in whichever process) and read by set_params; known[0] = 1 then.
        self._bounds = torch.zeros((2, 0), dtype=torch.float64)
        self._bounds_known = torch.zeros(1, dtype=torch.int64).share_memory_()
        # Epochs, shared with DataLoader workers like the parameters: the first epoch of
        # the next pass, and how many passes each worker slot (rank x worker) began since.
        self._epoch_base = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._passes = torch.zeros(num_instances, dtype=torch.int64).share_memory_()
        #: How ``params`` is laid out in the shared row (any nesting of dicts, lists and
        #: numeric arrays: Box of any shape, Discrete, MultiDiscrete, Dict, Tuple, ...).
        self._layout: ParamsLayout | None = None
        if params is not None:
            self._layout = ParamsLayout.of(params)
            row = self._layout.flatten(params)
            self._layout.check(row, None, None)
            self._shared = SharedRows(np.tile(row, (num_instances, 1)))
            self._bounds = torch.zeros((2, self._layout.size), dtype=torch.float64).share_memory_()
        #: The sensor model every frame passes through in the worker that streams it
        #: (:mod:`btgym.sensor`), or None; its ranges are shared with DataLoader workers.
        self.sensor: SensorModel | None = None
        self._sensor_row: SharedRows | None = None  # behind a seqlock, as the params
        if sensor is not None:
            self.sensor = sensor if isinstance(sensor, SensorModel) else SensorModel(sensor, seed)
            self._sensor_row = SharedRows(self.sensor.ranges[None, :])

    # -- feedback --------------------------------------------------------------------
    def set_params(self, params: Any, env_ids: Sequence[int] | None = None) -> None:
        """Change the randomization parameters of all (or some) instances while streaming.

        Items produced from the next request on carry the new parameters; every item
        carries the parameters of one call (a seqlock per instance: never a mix of two).
        Bad values fail here, not later in a worker: NaN always, and values outside the
        action space's bounds once any stream (in this process or a worker) has shaken
        hands with its instances: :class:`~btgym.errors.InvalidActionError` (a
        ``ValueError``) naming each entry, its bound and its value.
        """
        if self._shared is None or self._layout is None:
            raise ConfigError(
                "expected a StreamDataset created with params= (an action of the scene's "
                "action space) to change parameters while streaming"
            )
        ids = list(range(self.num_instances)) if env_ids is None else list(env_ids)
        bad_ids = [i for i in ids if not 0 <= i < self.num_instances]
        if bad_ids:
            raise ConfigError(
                f"expected env ids in [0, {self.num_instances}), got {bad_ids} in {ids}"
            )
        row = self._layout.flatten(params)
        self._layout.check(row, *self._known_bounds())
        self._shared.write(ids, row)

    def set_sensor_params(self, params: Mapping[str, Any]) -> dict[str, float]:
        """Change the sensor's ranges (names as :meth:`btgym.sensor.SensorModel.get_params`)
        for every instance, also in ``DataLoader`` workers; returns all of them.
        """
        if self.sensor is None or self._sensor_row is None:
            raise ConfigError(
                "expected a StreamDataset created with sensor= (a SensorModel or its ranges) "
                "to change sensor parameters while streaming"
            )
        ranges = self.sensor.set_params(params)
        self._sensor_row.write([0], self.sensor.ranges)
        return ranges

    def sensor_now(self) -> SensorModel | None:
        """The sensor model with the ranges set last (from any process), or None."""
        if self.sensor is None or self._sensor_row is None:
            return None
        self.sensor.ranges = self._sensor_row.read(0).astype(np.float32)
        return self.sensor

    def params(self, env_id: int) -> np.ndarray | None:
        """The parameters instance ``env_id`` uses now (as one ``set_params`` call left them)."""
        if self._shared is None or self._layout is None:
            return None
        return self._layout.unflatten(self._shared.read(env_id))

    def note_action_space(self, space: Any) -> None:
        """Learn the action space's bounds (a stream's handshake), so :meth:`set_params`
        checks values against them in every process that shares this dataset.
        """
        if self._layout is None or int(self._bounds_known[0]):
            return
        bounds = self._layout.bounds(space)
        if bounds is None:
            return
        # Every stream writes the same values: a reader never sees a mix of different ones.
        self._bounds[0].numpy()[:] = bounds[0]
        self._bounds[1].numpy()[:] = bounds[1]
        fence()
        self._bounds_known[0] = 1

    def _known_bounds(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        if not int(self._bounds_known[0]):
            return None, None
        fence()
        return self._bounds[0].numpy().copy(), self._bounds[1].numpy().copy()

    # -- reaching the scenes ---------------------------------------------------------
    def call(
        self, name: str, *args: Any, env_ids: Sequence[int] | None = None, **kwargs: Any
    ) -> tuple[Any, ...]:
        """Call a public scene method (or read an attribute) on the instances this process
        streams from: all (``env_ids=None``), one or several; results in ``env_ids`` order.

        As :meth:`btgym.BlenderVectorEnv.call`. Instances streamed by ``DataLoader``
        workers belong to those processes: reach them with :meth:`set_params` (shared
        memory) instead.
        """
        return tuple(
            stream.call(env_id, name, list(args), kwargs) for stream, env_id in self._reach(env_ids)
        )

    def pop_events(self) -> list[dict[str, Any]]:
        """Scene events (``Scene.emit``) of the instances this process streams from, with
        their ``instance`` (the env id); workers' instances keep theirs.
        """
        return pop_events(
            client
            for stream in self.streams
            for client in (*stream.pipes.values(), *stream.connection.clients)
        )

    def get_attr(self, name: str, env_ids: Sequence[int] | None = None) -> tuple[Any, ...]:
        """A public scene attribute of each instance (see :meth:`call`)."""
        return self.call("get_attr", name, env_ids=env_ids)

    def set_attr(self, name: str, values: Any, env_ids: Sequence[int] | None = None) -> None:
        """Set a public scene attribute: one value for all, or a list with one per instance."""
        targets = self._reach(env_ids)
        if not isinstance(values, list | tuple):
            values = [values] * len(targets)
        if len(values) != len(targets):
            raise ConfigError(
                f"expected one value per instance ({len(targets)}), got {len(values)}"
            )
        for (stream, env_id), value in zip(targets, values, strict=True):
            stream.call(env_id, "set_attr", [name, value], {})

    def _reach(self, env_ids: Sequence[int] | None) -> list[tuple[Stream, int]]:
        """(stream, env id) for the instances asked for, all streamed in this process."""
        owned = {env_id: stream for stream in self.streams for env_id in stream.ids}
        wanted = sorted(owned) if env_ids is None else [int(i) for i in env_ids]
        missing = [i for i in wanted if i not in owned]
        if missing or not wanted:
            raise ConfigError(
                f"expected instances streamed by this process (ids {sorted(owned)}: start "
                f"iterating first; DataLoader workers own theirs, reach those with "
                f"set_params), got {missing or wanted}"
            )
        return [(owned[i], i) for i in wanted]

    # -- epochs ----------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch`` (later passes count on from it).

        As ``DistributedSampler.set_epoch``: call it before iterating to reproduce an
        epoch's seeds, episodes and sampled actions; without it every pass is new.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer) or epoch < 0:
            raise ConfigError(f"expected epoch as an int >= 0, got {epoch!r}")
        self._epoch_base[0] = int(epoch)
        self._passes.zero_()

    def _begin_pass(self, slot: int) -> int:
        """The epoch of the pass the worker in ``slot`` begins now."""
        epoch = int(self._epoch_base[0] + self._passes[slot])
        self._passes[slot] += 1
        return epoch

    # -- iteration -------------------------------------------------------------------
    def assignment(self) -> tuple[list[int], int | None]:
        """The instance ids and item count of the calling worker (and DDP rank)."""
        return self._assignment()[:2]

    def _assignment(self) -> tuple[list[int], int | None, int]:
        """:meth:`assignment` and the worker's slot (its index among all workers x ranks)."""
        worker = get_worker_info()
        workers, worker_id = (1, 0) if worker is None else (worker.num_workers, worker.id)
        rank, world = _ddp_rank()
        total_workers, index = world * workers, rank * workers + worker_id
        if index >= self.num_instances:  # more workers than instances: this one idles
            warnings.warn(
                f"DataLoader worker {index} of {total_workers} (workers x ranks) has no "
                f"instance to stream ({self.num_instances} instances): it stays idle; "
                f"num_workers <= num_instances uses every worker",
                stacklevel=2,
            )
            return [], 0, index
        streaming = min(total_workers, self.num_instances)
        ids = [i for i in range(self.num_instances) if i % streaming == index]
        if self.items is None:
            return ids, None, index
        count = self.items // streaming + (1 if index < self.items % streaming else 0)
        return ids, count, index

    def __iter__(self) -> Iterator[dict[str, Any]]:
        ids, count, slot = self._assignment()
        if not ids:  # an idle worker (more workers than instances)
            return
        epoch = self._begin_pass(slot)
        if count == 0:
            return
        stream = Stream(self, ids, epoch)
        self.streams.append(stream)
        try:
            produced = 0
            while count is None or produced < count:
                yield stream.next_item(remaining=None if count is None else count - produced)
                produced += 1
        finally:
            stream.close()
            self.streams.remove(stream)

    def __len__(self) -> int:
        if self.items is None:
            raise TypeError("an endless StreamDataset has no length; pass items=")
        return self.items

    @property
    def timeout(self) -> float:
        """Seconds each request may take (``launch.timeout``)."""
        return self.launch.timeout


class ReplayDataset(Dataset):
    """A recorded stream (:func:`btgym.recording.record`) as a map-style dataset.

    No Blender needed; ``shuffle=True`` works. ``transform`` is applied to each item.
    ``max_member_bytes``: the largest file of one sample read from a shard (a shard
    declaring a larger one is refused before it is read; see :class:`ShardReader`).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        transform: Any = None,
        max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
    ) -> None:
        self.reader = ShardReader(directory, max_member_bytes)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.reader[index]
        item["info"] = Info(item["info"])  # batches like a stream's (btgym.data.collate)
        return self.transform(item) if self.transform is not None else item


def _ddp_rank() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


__all__ = ["ReplayDataset", "StreamDataset"]
