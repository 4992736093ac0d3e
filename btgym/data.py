"""Stream rendered, annotated items from Blender instances into PyTorch (needs ``btgym[torch]``).

    dataset = StreamDataset("btgym/Cube-v0", num_instances=4, items=10_000, seed=0)
    loader = DataLoader(dataset, batch_size=32, num_workers=2, collate_fn=collate,
                        persistent_workers=True)
    for batch in loader:
        train(batch["obs"], batch["info"])
        dataset.set_params(new_randomization)      # feedback: reaches every instance

Each item is one frame of one instance: ``obs``, ``info``, and where it came from:
``env_id``, ``episode``, ``step``, ``seed`` (the episode's seed) and ``params``: the
action, i.e. the randomization, sent with the request that produced the frame (for
the first frame of an episode started inside a step, that step's action; for a seeded
reset, the parameters the instance has then, or a placeholder when the stream has none:
:func:`params_placeholder`; such a frame shows the scene's reset defaults). The same
seed and params reproduce the item.
Items batch with :func:`collate` and with torch's ``default_collate`` alike.

Every instance always has ``depth`` requests (default 2, of ``frames_per_request``
steps each, default 4) queued while the trainer works, so renders overlap transfer and
training; no more than ``depth`` replies per instance wait to be consumed, so memory
stays bounded and the simulation waits when training falls behind (back-pressure).
Instances are split across ``DataLoader`` workers (and DDP ranks); each worker starts
its own instances when iterated, never in ``__init__``. Every pass (epoch) streams new
episodes; :meth:`StreamDataset.set_epoch` replays one. A stream nobody iterates for
``idle_timeout`` seconds closes its instances (a kept traceback can keep a suspended
generator alive for ever) and relaunches them on its next item.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import zmq
from gymnasium import spaces
from torch.utils.data import Dataset, IterableDataset, get_worker_info

import btgym  # noqa: F401  (registers the env ids)
from btgym.connection import Connection, connect
from btgym.env import pop_events
from btgym.errors import ClosedError, ConfigError, InstanceDiedError, InstanceTimeoutError
from btgym.launch_config import LaunchConfig, resolve_launch
from btgym.pipeline import PipelinedClient
from btgym.recording import ShardReader
from btgym.wire import protocol
from btgym.wire.space_codec import restore
from btgym.wire.validation import check_action

#: Where a stream says that it closed idle instances (info).
logger = logging.getLogger("btgym")
#: Seconds without a ``next()`` after which a stream closes its instances (None: never).
IDLE_TIMEOUT = 300.0


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
    :class:`~btgym.launch_config.LaunchConfig`, the same for every btgym entry point
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
    ) -> None:
        super().__init__()
        if idle_timeout is not None and idle_timeout <= 0:
            raise ConfigError(f"expected idle_timeout > 0 seconds or None, got {idle_timeout}")
        if items is not None and items < 0:
            raise ConfigError(f"expected items >= 0 or None, got {items}")
        self.addresses = _remote_addresses(env_id, addresses, launch_info)
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
            spec_kwargs: dict[str, Any] = {}
            num_instances = len(self.addresses)
        else:
            if env_id is None:
                raise ConfigError("expected an env id or scene spec, addresses= or launch_info=")
            self.scene, spec_kwargs = _resolve(env_id)
        num_instances = 1 if num_instances is None else num_instances
        if num_instances < 1:
            raise ConfigError(f"expected num_instances >= 1, got {num_instances}")
        self.env_kwargs = {**spec_kwargs, **(env_kwargs or {})}
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
        self.launch = resolve_launch(
            launch,
            launch_options,
            timeout=timeout,
            start_timeout=start_timeout,
            curve=curve,
            blend_file=None if blend_file is None else os.fspath(blend_file),
        )
        self.items = items
        self.seed = seed
        self.idle_timeout = idle_timeout
        self.initial_params = params
        #: The streams this process is iterating now (for introspection and tests).
        self.streams: list[_Stream] = []
        # The feedback channel: one row of parameters per instance in shared memory, so
        # that DataLoader workers (forked or spawned) see what the main process sets.
        self._shared: torch.Tensor | None = None
        self._version = torch.zeros(num_instances, dtype=torch.int64).share_memory_()
        # Epochs, shared with DataLoader workers like the parameters: the first epoch of
        # the next pass, and how many passes each worker slot (rank x worker) began since.
        self._epoch_base = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._passes = torch.zeros(num_instances, dtype=torch.int64).share_memory_()
        #: How ``params`` is laid out in the shared row (any nesting of dicts, lists and
        #: numeric arrays: Box of any shape, Discrete, MultiDiscrete, Dict, Tuple, ...).
        self._layout: ParamsLayout | None = None
        if params is not None:
            self._layout = ParamsLayout.of(params)
            row = torch.as_tensor(self._layout.flatten(params))
            self._shared = row.repeat(num_instances, 1).share_memory_()

    # -- feedback --------------------------------------------------------------------
    def set_params(self, params: Any, env_ids: Sequence[int] | None = None) -> None:
        """Change the randomization parameters of all (or some) instances while streaming.

        Items produced from the next request on carry the new parameters.
        """
        if self._shared is None or self._layout is None:
            raise ConfigError(
                "expected a StreamDataset created with params= (an action of the scene's "
                "action space) to change parameters while streaming"
            )
        ids = list(range(self.num_instances)) if env_ids is None else list(env_ids)
        self._shared[ids] = torch.as_tensor(self._layout.flatten(params))
        self._version[ids] += 1

    def params(self, env_id: int) -> np.ndarray | None:
        """The parameters instance ``env_id`` uses now."""
        if self._shared is None or self._layout is None:
            return None
        return self._layout.unflatten(self._shared[env_id].numpy())

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

    def _reach(self, env_ids: Sequence[int] | None) -> list[tuple[_Stream, int]]:
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
        if total_workers > self.num_instances:
            raise ConfigError(
                f"expected at most {self.num_instances} DataLoader workers x ranks (one "
                f"instance each at least), got {total_workers}"
            )
        ids = [i for i in range(self.num_instances) if i % total_workers == index]
        if self.items is None:
            return ids, None, index
        count = self.items // total_workers + (1 if index < self.items % total_workers else 0)
        return ids, count, index

    def __iter__(self) -> Iterator[dict[str, Any]]:
        ids, count, slot = self._assignment()
        epoch = self._begin_pass(slot)
        if count == 0:
            return
        stream = _Stream(self, ids, epoch)
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


HEALTH_CHECK_INTERVAL = 0.2  # seconds between checks of the instances' processes


class _Stream:
    """One worker's instances, each with up to ``depth`` requests queued at its server.

    The first request of an instance is a seeded ``reset``; every later one is a ``step``
    with server-side autoreset, so requests can be queued ahead without knowing where
    episodes end. A reply that ends an episode yields two items: the last frame of the
    episode and the first of the next (with the seed the server drew for it).

    With an ``idle_timeout``, a watcher thread closes the instances of a stream nobody
    asked for an item for that long (:meth:`suspend_if_idle`); the next item relaunches
    them. A lock keeps the watcher and :meth:`next_item` apart.
    """

    def __init__(self, dataset: StreamDataset, ids: list[int], epoch: int = 0) -> None:
        self.dataset = dataset
        self.ids = ids
        self.epoch = epoch
        self.restarts = 0
        #: Times the idle timeout closed the instances (each relaunch starts new episodes).
        self.suspensions = 0
        self.episode = dict.fromkeys(ids, 0)
        self.step = dict.fromkeys(ids, 0)
        self.seed = dict.fromkeys(ids, 0)
        self.ready: deque[dict[str, Any]] = deque()
        self.suspended = self.closed = False
        self._lock = threading.Lock()
        self._open()
        self.action_space = self.connection.action_space
        self.observation_space = self.connection.observation_space
        self.sample_action = _sampler(self.action_space, [dataset.seed, epoch, *ids])
        for env_id in ids:
            self._start_episode(env_id)
        self.last_used = time.monotonic()
        self._stop_watching = threading.Event()
        if dataset.idle_timeout is not None:
            threading.Thread(
                target=_watch_idle,
                args=(weakref.ref(self), dataset.idle_timeout, self._stop_watching),
                name="btgym-stream-idle",
                daemon=True,
            ).start()

    def _open(self) -> None:
        """Launch (or connect to) this worker's instances and pipeline a client to each."""
        dataset, ids = self.dataset, self.ids
        if dataset.addresses is not None:  # servers already running: this worker's share
            self.connection: Connection = connect(
                None, len(ids), addresses=[dataset.addresses[i] for i in ids], launch=dataset.launch
            )
        else:
            self.connection = connect(
                dataset.scene,
                len(ids),
                launch=dataset.launch.override(seed=dataset.seed + ids[0]),
                scene_kwargs=dataset.env_kwargs,
            )
        self.pipes = {
            env_id: PipelinedClient.for_client(client, dataset.depth, instance=env_id)
            for env_id, client in zip(ids, self.connection.clients, strict=True)
        }
        self.episodes_since_start = dict.fromkeys(ids, 0)
        self._next_health_check = 0.0
        self.poller = zmq.Poller()
        self.by_socket = {pipe.socket: env_id for env_id, pipe in self.pipes.items()}
        for pipe in self.pipes.values():
            self.poller.register(pipe.socket, zmq.POLLIN)

    def _start_episode(self, env_id: int) -> None:
        """Queue the seeded reset that starts instance ``env_id``'s current episode."""
        self.step[env_id] = 0
        self.seed[env_id] = _episode_seed(
            self.dataset.seed, env_id, self.episode[env_id], self.epoch
        )
        self.pipes[env_id].send("reset", {"seed": self.seed[env_id], "options": None}, tag=None)

    @property
    def in_flight(self) -> int:
        """Items the requests in flight will make (at least; an episode's end adds one)."""
        return sum(_items(tag) for pipe in self.pipes.values() for tag in pipe.pending)

    def _fill(self, env_id: int, remaining: int | None) -> None:
        pipe, per_request = self.pipes[env_id], self.dataset.frames_per_request
        while not pipe.full:
            wanted = per_request
            if remaining is not None:
                wanted = min(wanted, remaining - self.in_flight - len(self.ready))
                if wanted <= 0:
                    return
            params = self.dataset.params(env_id)
            if params is not None:
                params = check_action(self.action_space, _as_action(self.action_space, params))
            # Sampled actions are in the space by construction.
            actions = [self.sample_action() if params is None else params for _ in range(wanted)]
            if wanted == 1:
                pipe.send("step", {"action": actions[0], "autoreset": True}, tag=actions[0])
            else:
                pipe.send("steps", {"actions": actions, "autoreset": True}, tag=_Batch(actions))

    def next_item(self, remaining: int | None = None) -> dict[str, Any]:
        """The next item; instances are topped up to ``depth`` requests as replies arrive.

        ``remaining``: items still wanted including this one (None: endless); no request
        is sent that no item would come from. Instances closed as idle are relaunched.
        """
        with self._lock:
            if self.closed:
                raise ClosedError("expected an open stream for the next item, but it is closed")
            if self.suspended:
                self._resume()
            item = self._next_item(remaining)
            self.last_used = time.monotonic()
            return item

    def _next_item(self, remaining: int | None) -> dict[str, Any]:
        while not self.ready:
            env_id = self._wait()
            try:
                params, reply = self.pipes[env_id].recv()
            except (InstanceDiedError, InstanceTimeoutError) as exc:
                self._restart(env_id, exc)
                continue
            if isinstance(params, _Batch):
                for action, one in zip(params, reply["steps"], strict=True):
                    if not self._unpack(env_id, action, one):
                        break  # recycled mid-batch: the rest came from the old process
            else:
                self._unpack(env_id, params, reply)
            self._fill(env_id, remaining)
        return self.ready.popleft()

    def _recycle_due(self, env_id: int) -> bool:
        """Leak protection, asked as an episode ends (:meth:`Connection.recycle_due`)."""
        return self.connection.recycle_due(
            self.ids.index(env_id),
            self.episodes_since_start[env_id] + 1,  # the episode ending now counts
            self.dataset.recycle_after_episodes,
            self.dataset.recycle_rss_mb,
        )

    def _restart(self, env_id: int, why: BaseException | str) -> None:
        """Replace a dead, hung or recycled instance; its requests in flight are issued again.

        Items are made only from replies, so none is repeated; the lost requests are
        re-sent to the fresh instance, which starts a new episode. The fresh process's
        client (:meth:`Connection.restart`) brings its own frame directory.
        """
        if self.connection.launcher is None:
            if isinstance(why, BaseException):
                raise why
            return
        client = self.connection.restart(self.ids.index(env_id), why, env_id=env_id)
        old = self.pipes[env_id]
        self.poller.unregister(old.socket)
        del self.by_socket[old.socket]
        old.close()
        pipe = PipelinedClient.for_client(client, self.dataset.depth, instance=env_id)
        self.pipes[env_id] = pipe
        self.by_socket[pipe.socket] = env_id
        self.poller.register(pipe.socket, zmq.POLLIN)
        self.restarts += 1
        self.episodes_since_start[env_id] = 0
        self.episode[env_id] += 1
        self._start_episode(env_id)

    def _unpack(self, env_id: int, params: Any, reply: dict[str, Any]) -> bool:
        """Make items of one step's reply; False when the instance was recycled."""
        ended = "final_obs" in reply
        if "reward" in reply:  # a step (the first reply of an instance is its reset)
            self.step[env_id] += 1
        self.ready.append(
            self._item(
                env_id,
                reply["final_obs" if ended else "obs"],
                reply["final_info" if ended else "info"],
                params,
            )
        )
        if ended and self._recycle_due(env_id):
            # Leak protection: the next episode starts on a fresh instance instead.
            self._restart(env_id, "recycled")
            return False
        if ended:
            self.episodes_since_start[env_id] += 1
            self.episode[env_id] += 1
            self.step[env_id] = 0
            self.seed[env_id] = int(reply["reset_seed"])
            self.ready.append(self._item(env_id, reply["obs"], reply["info"], params))
        return True

    def _item(self, env_id: int, obs: Any, info: Any, params: Any) -> dict[str, Any]:
        if params is None:  # a seeded reset: no action made this frame
            params = self._params_now(env_id)
        return {
            "obs": restore(self.observation_space, obs),
            "info": info,
            "env_id": env_id,
            "episode": self.episode[env_id],
            "step": self.step[env_id],
            "seed": self.seed[env_id],
            "params": params,
        }

    def _wait(self) -> int:
        # Each request's own timeout finds hung instances; this is only a safety net.
        deadline = time.monotonic() + 2 * self.dataset.timeout + 1.0
        while True:
            # Health first, a few times a second: while healthy instances keep replying,
            # a dead or hung one would otherwise never be noticed.
            now = time.monotonic()
            if now >= self._next_health_check:
                self._next_health_check = now + HEALTH_CHECK_INTERVAL
                for env_id, pipe in self.pipes.items():
                    if pipe.pending and (not pipe.is_alive() or pipe.oldest_age() > pipe.timeout):
                        return env_id  # recv() raises InstanceDiedError/TimeoutError at once
            events = self.poller.poll(100)
            if events:
                return self.by_socket[events[0][0]]
            self._next_health_check = 0.0
            if time.monotonic() > deadline:
                raise InstanceTimeoutError(
                    f"expected an item within {self.dataset.timeout:g} s from instances "
                    f"{sorted(self.pipes)}, got none"
                )

    def _params_now(self, env_id: int) -> Any:
        """The params of a frame no action made: the instance's current ones, or a placeholder.

        Every item then has params of one type and shape, so items batch with torch's
        ``default_collate`` as well as with :func:`collate`.
        """
        params = self.dataset.params(env_id)
        if params is None:
            return params_placeholder(self.action_space)  # a new one each time: items own it
        return check_action(self.action_space, _as_action(self.action_space, params))

    def call(self, env_id: int, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """``call`` on instance ``env_id`` through its REQ client (the stream's pipeline is
        a separate peer of the same server, so items in flight are not disturbed).
        """
        with self._lock:
            if self.closed:
                raise ClosedError("expected an open stream to call its scenes, but it is closed")
            if self.suspended:
                self._resume()
            client = self.connection.clients[self.ids.index(env_id)]
            body = {"name": name, "args": args, "kwargs": kwargs}
            return client.request("call", body)["result"]

    # -- idle instances ----------------------------------------------------------------
    def suspend_if_idle(self) -> bool:
        """Close the instances if no item was asked for in ``idle_timeout`` s (the watcher)."""
        if not self._lock.acquire(blocking=False):  # next_item is running: not idle
            return False
        try:
            idle = time.monotonic() - self.last_used
            limit = self.dataset.idle_timeout
            if self.closed or self.suspended or limit is None or idle < limit:
                return False
            try:
                self._close_instances()
            finally:  # even half closed, the next item relaunches them
                self.suspended = True
                self.suspensions += 1
            logger.info(
                "btgym stream: instances %s idle for %.0f s (idle_timeout), closed; the next "
                "item relaunches them",
                self.ids,
                idle,
            )
            return True
        finally:
            self._lock.release()

    def _resume(self) -> None:
        """Relaunch closed idle instances; each starts a new episode (seeded as always)."""
        self._open()
        self.suspended = False
        for env_id in self.ids:
            self.episode[env_id] += 1
            self._start_episode(env_id)

    def close(self) -> None:
        """Stop watching and close the instances (unless the idle timeout already did)."""
        self._stop_watching.set()
        with self._lock:
            if self.closed:
                return
            self.closed = True
            if not self.suspended:
                self._close_instances()

    def _close_instances(self) -> None:
        for pipe in self.pipes.values():  # drain, so no server is left mid-reply to us
            while pipe.pending:
                try:
                    pipe.recv(timeout=5.0)
                except Exception:  # noqa: BLE001 - closing anyway; the launcher reaps it
                    break
            pipe.close()
        self.connection.close()
        self.pipes, self.by_socket = {}, {}


class ReplayDataset(Dataset):
    """A recorded stream (:func:`btgym.recording.record`) as a map-style dataset.

    No Blender needed; ``shuffle=True`` works. ``transform`` is applied to each item.
    """

    def __init__(self, directory: str | os.PathLike[str], transform: Any = None) -> None:
        self.reader = ShardReader(directory)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.reader[index]
        return self.transform(item) if self.transform is not None else item


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch stream items: observations stacked into a tensor; infos kept as a list.

    Annotations vary in length from item to item, so ``info`` stays a list of dicts;
    ``env_id``, ``episode``, ``step`` and ``seed`` become int64 tensors and numeric
    ``params`` a stacked float64 tensor (NaN rows for items without params).
    """
    batch: dict[str, Any] = {
        "obs": _stack([item["obs"] for item in items]),
        "info": [item["info"] for item in items],
    }
    for key in ("env_id", "episode", "step", "seed"):
        batch[key] = torch.as_tensor([item[key] for item in items], dtype=torch.int64)
    params = [item["params"] for item in items]
    shapes = {np.shape(p) for p in params if p is not None}
    if len(shapes) == 1 and all(p is None or np.asarray(p).dtype.kind in "biuf" for p in params):
        # Numeric params stack into one tensor; items without params get a NaN row.
        (shape,) = shapes
        rows = [np.full(shape, np.nan) if p is None else np.asarray(p, np.float64) for p in params]
        batch["params"] = torch.as_tensor(np.stack(rows))
    else:
        batch["params"] = params
    return batch


def _stack(arrays: list[Any]) -> torch.Tensor:
    """Stack observations into one tensor; in a DataLoader worker, straight into shared memory.

    A worker's batch crosses to the trainer as a shared-memory tensor. Stacking into
    shared memory up front saves the DataLoader a second copy of every frame.
    """
    first = np.asarray(arrays[0])
    if get_worker_info() is None or first.dtype.kind not in "biuf" or first.dtype.byteorder == ">":
        return torch.as_tensor(np.stack(arrays))
    dtype = torch.from_numpy(first.reshape(-1)[:0]).dtype
    storage = torch.UntypedStorage._new_shared(first.nbytes * len(arrays))
    size = (len(arrays), *first.shape)
    stride = torch.empty(size, device="meta").stride()  # contiguous, without allocating
    out = torch.empty(0, dtype=dtype).set_(storage, 0, size, stride)
    np.stack(arrays, out=out.numpy())
    return out


def _episode_seed(seed: int, env_id: int, episode: int, epoch: int = 0) -> int:
    """A reset seed unique to (dataset seed, epoch, instance, episode)."""
    return int(np.random.SeedSequence([seed, epoch, env_id, episode]).generate_state(1)[0])


def _watch_idle(stream: weakref.ref, timeout: float, stop: threading.Event) -> None:
    """The idle watcher's loop: a few checks per ``timeout``, until the stream is closed.

    It holds the stream weakly, so that a stream nobody references can still be collected.
    """
    period = min(max(timeout / 4, 0.05), 5.0)
    while not stop.wait(period):
        alive = stream()
        if alive is None:
            return
        try:
            alive.suspend_if_idle()
        except Exception:  # noqa: BLE001 - a watcher must not die; the next item relaunches
            logger.exception("btgym stream: closing idle instances %s failed", alive.ids)
        del alive


def params_placeholder(space: spaces.Space) -> Any:
    """What an item no action made carries as ``params`` when the stream has none.

    A value shaped like an action: NaN for floating-point entries, the lowest value for
    integer ones (Discrete ``start``, MultiDiscrete ``start``, MultiBinary 0, an integer
    Box its ``low``); ``None`` for spaces without a fixed shape (Text, Sequence, ...).
    """
    if isinstance(space, spaces.Box):
        if np.dtype(space.dtype).kind == "f":
            return np.full(space.shape, np.nan, dtype=space.dtype)
        return space.low.copy()
    if isinstance(space, spaces.Discrete):
        return np.dtype(space.dtype).type(space.start)
    if isinstance(space, spaces.MultiDiscrete):
        return np.asarray(space.start, dtype=space.dtype).copy()
    if isinstance(space, spaces.MultiBinary):
        return np.zeros(space.shape, dtype=space.dtype)
    if isinstance(space, spaces.Dict):
        return {key: params_placeholder(sub) for key, sub in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(params_placeholder(sub) for sub in space.spaces)
    return None


def _remote_addresses(
    env_id: str | None, addresses: Sequence[str] | None, launch_info: Any
) -> list[str] | None:
    """The servers a stream connects to instead of launching, or None to launch."""
    given = [x for x in (addresses, launch_info) if x is not None]
    if isinstance(env_id, str) and env_id.startswith(("tcp://", "ipc://")):
        given.append([env_id])
    elif isinstance(env_id, str) and env_id.endswith(".json") and os.path.isfile(env_id):
        given.append(env_id)
    if len(given) > 1:
        raise ConfigError("expected one of an address, addresses= or launch_info=, got several")
    if not given:
        return None
    source = given[0]
    if isinstance(source, str | os.PathLike) and not str(source).startswith(("tcp:", "ipc:")):
        from btgym.cli import load_launch_info

        source = load_launch_info(source)["addresses"]
    found = [str(address) for address in source]
    if not found:
        raise ConfigError("expected at least one server address, got none")
    return found


def _resolve(env_id: str) -> tuple[str, dict[str, Any]]:
    """A registered btgym env id -> (scene spec, registered kwargs); a scene spec as is."""
    if env_id in gym.registry:
        kwargs = dict(gym.spec(env_id).kwargs)
        return str(kwargs.pop("scene")), kwargs
    if ":" in env_id:
        return env_id, {}
    raise ConfigError(
        f"expected a registered btgym env id or a 'module:Class' spec, got {env_id!r}"
    )


class _Batch(list):
    """The actions of one ``steps`` request (its tag), told apart from a single action."""


def _items(tag: Any) -> int:
    return len(tag) if isinstance(tag, _Batch) else 1


def _sampler(space: spaces.Space, seed: list[int]) -> Callable[[], Any]:
    """Random actions for a stream without params, seeded by the dataset and its ids.

    A bounded float Box is sampled with one numpy call (gymnasium's generic
    ``Box.sample`` costs 30-40 µs, a tenth of a frame's transport); other spaces use
    their own ``sample``.
    """
    rng = np.random.default_rng(seed)
    if (
        isinstance(space, spaces.Box)
        and np.issubdtype(space.dtype, np.floating)
        and space.is_bounded("both")
    ):
        low, dtype = space.low.astype(np.float64), space.dtype
        span, shape = space.high.astype(np.float64) - low, space.shape

        def sample_box() -> np.ndarray:
            # In [low, high) in float64; rounding to a narrower float can reach ``high``,
            # never pass it (the bounds are values of that dtype).
            return (low + span * rng.random(shape)).astype(dtype)

        return sample_box
    space.seed(int(rng.integers(2**31)))
    return space.sample


class ParamsLayout:
    """How a nested action (dicts, lists/tuples, numbers, numeric arrays) maps to one flat
    float64 row: the feedback channel shares one row per instance with DataLoader workers.

    The layout comes from the first value (``params=``); later values must have the same
    structure (keys, lengths, shapes), or :meth:`flatten` says what differs. Integers up
    to 2**53 survive the float64 row exactly.
    """

    def __init__(self, template: Any) -> None:
        self.template = template  # the structure, leaves replaced by (shape, dtype)
        self.size = _leaf_count(template)

    @classmethod
    def of(cls, value: Any) -> ParamsLayout:
        """The layout of ``value``."""
        return cls(_template(value))

    def flatten(self, value: Any) -> np.ndarray:
        """``value`` as a flat float64 row."""
        out: list[np.ndarray] = []
        _flatten_into(self.template, value, out, "params")
        return np.concatenate(out) if out else np.zeros(0)

    def unflatten(self, row: np.ndarray) -> Any:
        """The nested value a row holds."""
        value, used = _unflatten(self.template, np.asarray(row, np.float64), 0)
        if used != len(row):
            raise ConfigError(f"expected a row of {used} parameters, got {len(row)}")
        return value


@dataclass(frozen=True)
class _Leaf:
    """One numeric entry of a params layout: its shape and dtype, and whether it was a
    Python/numpy scalar (given back as a scalar).
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    scalar: bool

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def _template(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _template(item) for key, item in value.items()}
    if isinstance(value, list | tuple) and not all(
        isinstance(item, int | float | np.number) for item in value
    ):  # a Tuple action; a list of numbers is one array (a Box given as a list)
        return type(value)(_template(item) for item in value)
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise ConfigError(f"expected numeric params, got {array.dtype} in {value!r:.80}")
    return _Leaf(array.shape, array.dtype, not isinstance(value, np.ndarray) and array.ndim == 0)


def _leaf_count(template: Any) -> int:
    if isinstance(template, dict):
        return sum(_leaf_count(item) for item in template.values())
    if isinstance(template, list | tuple):
        return sum(_leaf_count(item) for item in template)
    return template.size


def _flatten_into(template: Any, value: Any, out: list[np.ndarray], where: str) -> None:
    if isinstance(template, dict):
        if not isinstance(value, dict) or set(value) != set(template):
            got = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise ConfigError(f"expected {where} with keys {sorted(template)}, got {got}")
        for key, item in template.items():
            _flatten_into(item, value[key], out, f"{where}[{key!r}]")
    elif isinstance(template, list | tuple):
        if not isinstance(value, list | tuple) or len(value) != len(template):
            raise ConfigError(
                f"expected {where} as a sequence of {len(template)}, got {value!r:.80}"
            )
        for i, (item, part) in enumerate(zip(template, value, strict=True)):
            _flatten_into(item, part, out, f"{where}[{i}]")
    else:
        array = np.asarray(value, np.float64)
        if array.shape != template.shape:
            raise ConfigError(f"expected {where} of shape {template.shape}, got {array.shape}")
        out.append(array.reshape(-1))


def _unflatten(template: Any, row: np.ndarray, start: int) -> tuple[Any, int]:
    if isinstance(template, dict):
        result = {}
        for key, item in template.items():
            result[key], start = _unflatten(item, row, start)
        return result, start
    if isinstance(template, list | tuple):
        parts = []
        for item in template:
            part, start = _unflatten(item, row, start)
            parts.append(part)
        return type(template)(parts), start
    values = row[start : start + template.size].astype(template.dtype).reshape(template.shape)
    return (values[()].item() if template.scalar else values), start + template.size


def _as_action(space: spaces.Space, params: Any) -> Any:
    """``params`` in the action's own form (a Box's shape and dtype); others as they are."""
    if isinstance(space, spaces.Box):
        return np.asarray(params, dtype=space.dtype).reshape(space.shape)
    return params


def _ddp_rank() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


__all__ = ["IDLE_TIMEOUT", "ReplayDataset", "StreamDataset", "collate", "params_placeholder"]
