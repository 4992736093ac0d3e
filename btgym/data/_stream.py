"""The stream engine: one worker's instances, each with requests queued at its server,
turned into items; and the watcher that closes instances nobody iterates.

:class:`Stream` reads its settings from a :class:`StreamSource` (the
:class:`~btgym.data.StreamDataset`), so that the dataset API and the engine live apart.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import zmq
from gymnasium import spaces

from btgym._connection import Connection, connect
from btgym._launch_config import LaunchConfig
from btgym._recycling import InstanceLives
from btgym.data._info import Info
from btgym.data._params import as_action, params_placeholder
from btgym.errors import ClosedError, InstanceDiedError, InstanceTimeoutError
from btgym.pipeline import PipelinedClient
from btgym.sensor import SensorModel
from btgym.wire.space_codec import restore
from btgym.wire.validation import check_action

#: Where a stream says that it closed idle instances (info).
logger = logging.getLogger("btgym")
#: Seconds without a ``next()`` after which a stream closes its instances (None: never).
IDLE_TIMEOUT = 300.0


class StreamSource(Protocol):
    """What a :class:`Stream` reads from its dataset."""

    addresses: list[str] | None
    scene: str | None
    env_kwargs: dict[str, Any]
    launch: LaunchConfig
    seed: int
    depth: int
    frames_per_request: int
    idle_timeout: float | None
    recycle_after_episodes: int | None
    recycle_rss_mb: float | None

    @property
    def timeout(self) -> float:
        """Seconds each request may take."""
        ...

    def params(self, env_id: int) -> Any:
        """The parameters instance ``env_id`` uses now (None without params)."""
        ...

    def note_action_space(self, space: spaces.Space) -> None:
        """Learn the action space a stream's instances declared (to check params early)."""
        ...

    def sensor_now(self) -> SensorModel | None:
        """The sensor model frames pass through now (None: frames as rendered)."""
        ...


HEALTH_CHECK_INTERVAL = 0.2  # seconds between checks of the instances' processes


class Stream:
    """One worker's instances, each with up to ``depth`` requests queued at its server.

    The first request of an instance is a seeded ``reset``; every later one is a ``step``
    with server-side autoreset, so requests can be queued ahead without knowing where
    episodes end. A reply that ends an episode yields two items: the last frame of the
    episode and the first of the next (with the seed the server drew for it).

    With an ``idle_timeout``, a watcher thread closes the instances of a stream nobody
    asked for an item for that long (:meth:`suspend_if_idle`); the next item relaunches
    them. A lock keeps the watcher and :meth:`next_item` apart.
    """

    def __init__(self, dataset: StreamSource, ids: list[int], epoch: int = 0) -> None:
        self.dataset = dataset
        self.ids = ids
        self.epoch = epoch
        self.lives = InstanceLives(len(ids), dataset.recycle_after_episodes, dataset.recycle_rss_mb)
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
        dataset.note_action_space(self.action_space)
        self.sample_action = sampler(self.action_space, [dataset.seed, epoch, *ids])
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
        self.lives.fresh_processes()
        self._next_health_check = 0.0
        self.poller = zmq.Poller()
        self.by_socket = {pipe.socket: env_id for env_id, pipe in self.pipes.items()}
        for pipe in self.pipes.values():
            self.poller.register(pipe.socket, zmq.POLLIN)

    def _start_episode(self, env_id: int) -> None:
        """Queue the seeded reset that starts instance ``env_id``'s current episode."""
        self.step[env_id] = 0
        self.seed[env_id] = episode_seed(
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
                params = check_action(self.action_space, as_action(self.action_space, params))
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

    @property
    def restarts(self) -> int:
        """Instances replaced (dead, hung or recycled) since the stream started."""
        return sum(self.lives.restarts)

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
        client = self.lives.restart(self.connection, self.ids.index(env_id), why, env_id=env_id)
        old = self.pipes[env_id]
        self.poller.unregister(old.socket)
        del self.by_socket[old.socket]
        old.close()
        pipe = PipelinedClient.for_client(client, self.dataset.depth, instance=env_id)
        self.pipes[env_id] = pipe
        self.by_socket[pipe.socket] = env_id
        self.poller.register(pipe.socket, zmq.POLLIN)
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
        if ended:
            self.lives.episode_ended(self.ids.index(env_id))
        if ended and self.lives.recycle_due(self.connection, self.ids.index(env_id)):
            # Leak protection: the next episode starts on a fresh instance instead.
            self._restart(env_id, "recycled")
            return False
        if ended:
            self.episode[env_id] += 1
            self.step[env_id] = 0
            self.seed[env_id] = int(reply["reset_seed"])
            self.ready.append(self._item(env_id, reply["obs"], reply["info"], params))
        return True

    def _item(self, env_id: int, obs: Any, info: Any, params: Any) -> dict[str, Any]:
        if params is None:  # a seeded reset: no action made this frame
            params = self._params_now(env_id)
        item = {
            "obs": restore(self.observation_space, obs),
            "info": Info(info),
            "env_id": env_id,
            "episode": self.episode[env_id],
            "step": self.step[env_id],
            "seed": self.seed[env_id],
            "params": params,
        }
        sensor = self.dataset.sensor_now()
        return item if sensor is None else sensor.sense_item(item)

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
        return check_action(self.action_space, as_action(self.action_space, params))

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


def episode_seed(seed: int, env_id: int, episode: int, epoch: int = 0) -> int:
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


class _Batch(list):
    """The actions of one ``steps`` request (its tag), told apart from a single action."""


def _items(tag: Any) -> int:
    return len(tag) if isinstance(tag, _Batch) else 1


def sampler(space: spaces.Space, seed: list[int]) -> Callable[[], Any]:
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


__all__ = ["IDLE_TIMEOUT", "Stream", "StreamSource"]
