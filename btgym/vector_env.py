"""``BlenderVectorEnv``: N Blender instances as one Gymnasium vector env.

The trainer talks to every instance directly over the protocol: a step sends all
requests first and then gathers the replies, so N renders run in parallel with no
Python worker process in between (unlike ``AsyncVectorEnv``). Same-step autoreset
happens inside the server in the same round trip.

Asynchronous use, for stragglers (EnvPool's ``send``/``recv``)::

    envs.async_reset(seed=0)
    while training:
        obs, rewards, terms, truncs, infos = envs.recv(batch_size=3)   # first 3 of N
        envs.send(policy(obs), env_ids=infos["env_id"])
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import zmq
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate

from btgym import _env_shared
from btgym._connection import connect
from btgym._launch_config import LaunchConfig, resolve_launch
from btgym._launch_info import running_servers
from btgym._moved import moved_attribute
from btgym._recycling import InstanceLives
from btgym._vector_info import add_info as _add_info
from btgym.client import Client
from btgym.errors import (
    AlreadyPendingCallError,
    ClosedError,
    ConfigError,
    InstanceDiedError,
    InstanceTimeoutError,
    InvalidActionError,
    InvalidActionTypeError,
    NoAsyncCallError,
    ResetMaskError,
    ResetNeeded,
)
from btgym.wire.security import ClientKeys
from btgym.wire.space_codec import restore
from btgym.wire.validation import check_action

RECOVERABLE = ("step", "reset")
#: The ``autoreset`` a SAME_STEP step asks for: Gymnasium's plain ``reset()`` (no seed).
UNSEEDED = "unseeded"


class BlenderVectorEnv(VectorEnv):
    """``num_envs`` instances of ``scene`` (or servers at ``addresses``, or those of a
    ``launch_info=`` file from ``btgym serve --info``) as a vector env.

    ``autoreset_mode``: ``NEXT_STEP`` (Gymnasium's default), ``SAME_STEP`` (``final_obs``
    and ``final_info`` in infos; what SB3 expects) or ``DISABLED`` (reset ended envs
    with ``reset(options={"reset_mask": mask})``). Autoresets are plain ``reset()`` calls
    (no seed), as in ``SyncVectorEnv``: the same scene and seeds give the same episodes.
    Instance ``i`` gets seed ``seed + i``.
    ``max_episode_steps`` goes to the scene, which truncates its own episodes.
    ``recover``: an instance that dies or hangs is restarted (within the launcher's
    restart limits); its episode ends as truncated with ``info["instance_restarted"]``,
    and the other instances are unaffected. ``recycle_after_episodes`` /
    ``recycle_rss_mb``: replace an instance by a fresh process between episodes after that
    many episodes, or when its memory exceeds that many MiB (leak protection).

    ``launch``: a :class:`~btgym._launch_config.LaunchConfig` (backend, timeouts, keys,
    restart limits, logs, ...), the same for every btgym entry point; the keywords
    ``seed``, ``blend_file``, ``blender``, ``timeout``, ``start_timeout`` and ``curve``
    replace its fields when given, and ``launch_options`` is a deprecated mapping of
    its fields. Restarts are reported on the ``btgym`` logger.

    Misuse of the local state raises Gymnasium's names: :class:`~btgym.errors.ResetNeeded`
    (a step before ``reset``, or after an episode's end with autoreset ``DISABLED``),
    :class:`~btgym.errors.AlreadyPendingCallError` (a call while ``send`` awaits its
    ``recv``) and :class:`~btgym.errors.NoAsyncCallError` (``recv`` with nothing sent).
    Infos are batched as Gymnasium documents: for each key an array with one row per
    env and a boolean mask under ``"_key"``.
    """

    metadata: dict[str, Any] = {
        "render_modes": ["rgb_array"],
        "render_fps": 30,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        scene: str | None = None,
        num_envs: int | None = None,
        *,
        addresses: Sequence[str] | None = None,
        launch_info: str | os.PathLike[str] | None = None,
        render_mode: str | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        seed: int | None = None,
        blend_file: str | None = None,
        blender: str | None = None,
        timeout: float | None = None,
        start_timeout: float | None = None,
        max_episode_steps: int | None = None,
        recover: bool = True,
        recycle_after_episodes: int | None = None,
        recycle_rss_mb: float | None = None,
        curve: ClientKeys | None = None,
        launch: LaunchConfig | None = None,
        launch_options: dict[str, Any] | None = None,
        **scene_kwargs: Any,
    ) -> None:
        _env_shared.check_render_mode(render_mode, self.metadata)
        # Servers already running (`btgym serve --info` wrote launch_info).
        addresses = running_servers(addresses=addresses, launch_info=launch_info)
        if addresses is not None:
            num_envs = len(addresses) if num_envs is None else num_envs
            if num_envs != len(addresses):
                raise ConfigError(f"expected {num_envs} addresses, got {len(addresses)}")
        if num_envs is None or num_envs < 1:
            raise ConfigError(f"expected num_envs >= 1, got {num_envs}")
        if max_episode_steps is not None:  # scenes truncate their episodes themselves
            scene_kwargs["max_episode_steps"] = max_episode_steps
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.render_mode = render_mode
        self.launch = resolve_launch(
            launch,
            launch_options,
            seed=seed,
            blend_file=blend_file,
            blender=blender,
            timeout=timeout,
            start_timeout=start_timeout,
            curve=curve,
        )
        self.connection = connect(
            scene, num_envs, addresses=addresses, launch=self.launch, scene_kwargs=scene_kwargs
        )
        self._closed_connection = False
        self.clients = self.connection.clients
        self.num_envs = num_envs
        self.single_action_space = self.connection.action_space
        self.single_observation_space = self.connection.observation_space
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        remote_metadata = self.connection.hellos[0].get("metadata", {})
        self.metadata = {
            **type(self).metadata,
            **remote_metadata,
            "autoreset_mode": self.autoreset_mode,
        }
        self._observations = create_empty_array(self.single_observation_space, num_envs)
        self._autoreset = np.zeros(num_envs, dtype=np.bool_)  # NEXT_STEP: reset on next step
        self._needs_reset = np.ones(num_envs, dtype=np.bool_)  # never reset, or ended (DISABLED)
        self._was_reset = np.zeros(num_envs, dtype=np.bool_)
        self._in_flight: set[int] = set()
        self._action_batch_spaces = {num_envs: self.action_space}
        self.recover = recover
        self.recycle_after_episodes, self.recycle_rss_mb = recycle_after_episodes, recycle_rss_mb
        self._lives = InstanceLives(num_envs, recycle_after_episodes, recycle_rss_mb)
        self._last_obs: list[Any] = [None] * num_envs
        self._reset_bodies: dict[int, dict[str, Any]] = {}

    # -- synchronous API -------------------------------------------------------------
    def reset(
        self,
        *,
        seed: int | list[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """Reset every env, or those in ``options["reset_mask"]``, as ``SyncVectorEnv`` does.

        Each env gets ``options`` without the mask (``{}`` when only the mask was given).
        """
        self._check_idle()
        super().reset(seed=seed if isinstance(seed, int) else None)
        seeds = _seeds(seed, self.num_envs)
        options = None if options is None else dict(options)
        mask = None if options is None else options.pop("reset_mask", None)
        if mask is not None:
            mask = _check_mask(mask, self.num_envs)
        else:
            mask = np.ones(self.num_envs, dtype=np.bool_)
        return self._reset_envs(np.flatnonzero(mask), seeds, [options] * self.num_envs)

    def reset_each(
        self, seeds: Sequence[int | None], options: Sequence[dict[str, Any] | None]
    ) -> tuple[Any, dict[str, Any]]:
        """Reset every env with its own seed and its own options (SB3's ``set_options``).

        Gymnasium's ``reset`` gives all envs the same options; this is the one extra.
        """
        self._check_idle()
        seeds = _seeds(list(seeds), self.num_envs)
        options = list(options)
        if len(options) != self.num_envs:
            raise ConfigError(f"expected {self.num_envs} options (one per env), got {len(options)}")
        return self._reset_envs(np.arange(self.num_envs), seeds, options)

    def _reset_envs(
        self, env_ids: np.ndarray, seeds: list[int | None], options: list[dict[str, Any] | None]
    ) -> tuple[Any, dict[str, Any]]:
        """Reset ``env_ids`` (env ``i`` with ``seeds[i]`` and ``options[i]``) in one round."""
        for i in env_ids:
            if self._recycle_due(i):
                self._restart_client(i, "recycled")
            self._reset_bodies[i] = {"seed": seeds[i], "options": options[i]}
            self.clients[i].send("reset", self._reset_bodies[i])
        replies = self._gather(env_ids)
        infos: dict[str, Any] = {}
        observations = list(iterate(self.observation_space, self._observations))
        for i, reply in zip(env_ids, replies, strict=True):
            observations[i] = self._last_obs[i] = restore(
                self.single_observation_space, reply["obs"]
            )
            infos = _add_info(infos, reply["info"], int(i), self.num_envs)
        self._mark_reset(env_ids)
        self._observations = self._batch(observations)
        return self._observations, infos

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Step every instance; Gymnasium's VectorEnv.step."""
        self._check_idle()
        env_ids = np.arange(self.num_envs)
        self._send_actions(actions, env_ids)
        return self._collect(env_ids, self._gather(env_ids), full_batch=True)

    # -- asynchronous API ------------------------------------------------------------
    def async_reset(self, seed: int | list[int | None] | None = None, options=None) -> None:
        """Start a reset of every instance; the replies come from :meth:`recv`."""
        self._check_idle()
        super().reset(seed=seed if isinstance(seed, int) else None)
        seeds = _seeds(seed, self.num_envs)
        for i, client in enumerate(self.clients):
            client.send("reset", {"seed": seeds[i], "options": options})
            self._in_flight.add(i)
        self._mark_reset(np.arange(self.num_envs))

    def send(self, actions: Any, env_ids: Iterable[int] | None = None) -> None:
        """Send one action to each of ``env_ids`` (all by default) without waiting."""
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(list(env_ids), int)
        busy = sorted(set(ids.tolist()) & self._in_flight)
        if busy:
            raise AlreadyPendingCallError(
                f"expected idle envs for send(), envs {busy} are still in flight (recv() first)"
            )
        self._send_actions(actions, ids)
        self._in_flight.update(ids.tolist())

    def recv(
        self, batch_size: int | None = None, timeout: float | None = None
    ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        """The first ``batch_size`` replies to arrive (all in flight by default).

        ``infos["env_id"]`` says which instance each row came from; rows are in order of
        arrival. A reply to ``async_reset`` comes with reward 0 and both flags False.
        """
        if not self._in_flight:
            raise NoAsyncCallError("expected requests in flight before recv(), got none")
        size = len(self._in_flight) if batch_size is None else batch_size
        if not 1 <= size <= len(self._in_flight):
            raise ConfigError(
                f"expected 1 <= batch_size <= {len(self._in_flight)} (in flight), got {size}"
            )
        ready = self._wait_ready(size, timeout)
        replies = self._gather(ready)
        self._in_flight.difference_update(ready)
        return self._collect(np.asarray(ready), replies, full_batch=False)

    @property  # a tuple where VectorEnv says int, as SyncVectorEnv's and AsyncVectorEnv's
    def np_random_seed(self) -> tuple[int | None, ...]:  # type: ignore[override]
        """The seed of each instance's scene generator, one per env as ``SyncVectorEnv`` gives.

        That of its last seeded ``reset`` (autoresets do not reseed), else its launch seed.
        """
        return self.get_attr("np_random_seed")

    # -- scene access ----------------------------------------------------------------
    def call(self, name: str, *args: Any, env_ids: Iterable[int] | None = None, **kwargs: Any):
        """Call a public scene method (or read an attribute) on every or some instances."""
        ids = self._ids(env_ids)
        body = {"name": name, "args": list(args), "kwargs": kwargs}
        return tuple(reply["result"] for reply in self._request_each("call", ids, body))

    def pop_events(self) -> list[dict[str, Any]]:
        """The scene events of every instance since the last call (``instance`` says whose)."""
        return _env_shared.pop_events(self.clients)

    def get_attr(self, name: str, env_ids: Iterable[int] | None = None) -> tuple[Any, ...]:
        """A scene attribute of every or some instances (see :meth:`call`)."""
        return self.call("get_attr", name, env_ids=env_ids)

    def set_attr(self, name: str, values: Any, env_ids: Iterable[int] | None = None) -> None:
        """Set a scene attribute: one value for all, or a list with one value per env."""
        ids = self._ids(env_ids)
        if not isinstance(values, list | tuple):
            values = [values] * len(ids)
        if len(values) != len(ids):
            raise ConfigError(f"expected {len(ids)} values, got {len(values)}")
        self._check_idle()
        for i, value in zip(ids, values, strict=True):
            self.clients[i].send("call", {"name": "set_attr", "args": [name, value]})
        self._gather(ids)

    # Gymnasium's hint returns its unbound RenderFrame TypeVar, which no concrete type matches.
    def render(self) -> tuple[np.ndarray, ...] | None:  # type: ignore[override]
        """Each instance's frame (None, with a warning, without render_mode); VectorEnv.render."""
        if not _env_shared.can_render(self.render_mode):
            return None
        return tuple(reply["frame"] for reply in self._request_each("render", self._ids(None)))

    def close_extras(self, **kwargs: Any) -> None:
        """Stop the instances this env started; Gymnasium's VectorEnv.close_extras."""
        if not self._closed_connection:
            self._closed_connection = True
            self.connection.close()

    def __enter__(self) -> BlenderVectorEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> Any:
        raise _env_shared.not_picklable(self)

    def __del__(self) -> None:
        if not getattr(self, "_closed_connection", True):
            self.close()

    # -- internals -------------------------------------------------------------------
    def _send_actions(self, actions: Any, env_ids: np.ndarray) -> None:
        self._check_open()
        try:
            per_env = list(iterate(self._action_batch_space(len(env_ids)), actions))
        except TypeError as exc:  # a scalar, or a list for a dict: Gymnasium's TypeError
            raise InvalidActionTypeError(
                f"expected a batch of {len(env_ids)} actions for {self.single_action_space}, "
                f"got {type(actions).__name__}: {exc}"
            ) from exc
        except (ValueError, KeyError, IndexError) as exc:
            raise InvalidActionError(
                f"expected a batch of {len(env_ids)} actions for {self.single_action_space}, "
                f"got {type(actions).__name__}: {exc}"
            ) from exc
        if len(per_env) != len(env_ids):
            raise InvalidActionError(
                f"expected a batch of {len(env_ids)} actions (one per env), got {len(per_env)}"
            )
        checked = [
            check_action(self.single_action_space, action, f"actions[{i}]")
            for i, action in zip(env_ids, per_env, strict=True)
        ]
        self._check_reset(env_ids)  # before anything is sent: every env stays idle
        for i, action in zip(env_ids, checked, strict=True):
            if self._autoreset[i]:  # NEXT_STEP: this step resets the ended env
                if self._recycle_due(i):  # between episodes: nothing is lost
                    self._restart_client(i, "recycled")
                self.clients[i].send("reset", {"seed": None, "options": None})
            else:
                autoreset = UNSEEDED if self.autoreset_mode == AutoresetMode.SAME_STEP else False
                self.clients[i].send("step", {"action": action, "autoreset": autoreset})

    def _check_reset(self, env_ids: np.ndarray) -> None:
        """Raise :class:`ResetNeeded` when one of ``env_ids`` must be reset before it steps."""
        blocked = [int(i) for i in env_ids if self._needs_reset[i]]
        if not blocked:
            return
        i = blocked[0]
        if not self._was_reset[i]:
            raise ResetNeeded(
                f"expected reset() before the first step, got a step for envs {blocked} "
                "that were never reset"
            )
        raise ResetNeeded(
            f"expected env {i} to be reset (options={{'reset_mask': ...}}) before stepping "
            f"again: its episode ended and autoreset is DISABLED (envs {blocked})"
        )

    def _mark_reset(self, env_ids: np.ndarray) -> None:
        self._autoreset[env_ids] = False
        self._needs_reset[env_ids] = False
        self._was_reset[env_ids] = True

    def _action_batch_space(self, n: int) -> gym.Space:
        """The batched action space for ``n`` envs, built once (building it costs ~0.1 ms)."""
        space = self._action_batch_spaces.get(n)
        if space is None:
            space = self._action_batch_spaces[n] = batch_space(self.single_action_space, n)
        return space

    def _collect(self, env_ids: np.ndarray, replies: list[dict], full_batch: bool):
        n = len(env_ids)
        rewards = np.zeros(n, dtype=np.float64)
        terminations = np.zeros(n, dtype=np.bool_)
        truncations = np.zeros(n, dtype=np.bool_)
        observations = []
        infos: dict[str, Any] = {}  # a partial batch's infos have n rows, not num_envs
        for row, (i, reply) in enumerate(zip(env_ids, replies, strict=True)):
            observation = restore(self.single_observation_space, reply["obs"])
            observations.append(observation)
            self._last_obs[i] = observation
            if "reward" in reply:  # a step; a reset reply (NEXT_STEP autoreset) has none
                rewards[row] = reply["reward"]
                terminations[row] = reply["terminated"]
                truncations[row] = reply["truncated"]
            if "final_obs" in reply:
                final = restore(self.single_observation_space, reply["final_obs"])
                infos = _add_info(
                    infos, {"final_obs": final, "final_info": reply["final_info"]}, row, n
                )
            infos = _add_info(infos, reply["info"], row, n)
            ended = bool(terminations[row] or truncations[row])
            if ended:
                self._lives.episode_ended(i)
            if ended and "final_obs" in reply and self._recycle_due(i):
                # SAME_STEP: the next episode starts on a fresh instance instead.
                client = self._restart_client(i, "recycled")
                fresh = client.request("reset", {"seed": None, "options": None})
                observations[row] = restore(self.single_observation_space, fresh["obs"])
                self._last_obs[i] = observations[row]
            self._autoreset[i] = ended and self.autoreset_mode == AutoresetMode.NEXT_STEP
            self._needs_reset[i] = ended and self.autoreset_mode == AutoresetMode.DISABLED
        batch = self._batch(observations)
        if full_batch:
            self._observations = batch
        else:
            infos["env_id"] = np.asarray(env_ids, dtype=np.int64)
        return batch, rewards, terminations, truncations, infos

    def _batch(self, observations: list[Any]) -> Any:
        """A new batch array (never a buffer a later step overwrites)."""
        space = self.single_observation_space
        return concatenate(space, observations, create_empty_array(space, len(observations)))

    def _gather(self, env_ids: Iterable[int]) -> list[Any]:
        """Receive the reply of each env in ``env_ids``; drain all before raising an error.

        A step or reset whose instance died or hung is recovered (see :meth:`_recover`)
        when this env launched its instances and ``recover`` is on.
        """
        replies, first_error = [], None
        for i in env_ids:
            op = self.clients[i].pending
            try:
                replies.append(self.clients[i].recv())
                continue
            except (InstanceDiedError, InstanceTimeoutError) as exc:
                error: Exception = exc
                if self.recover and self.connection.launcher is not None and op in RECOVERABLE:
                    try:
                        replies.append(self._recover(i, op, exc))
                        continue
                    except Exception as failure:  # noqa: BLE001 - reported below
                        error = failure
            except Exception as exc:  # keep draining: every REQ socket must be left idle
                error = exc
            replies.append(None)
            first_error = first_error or error
        if first_error is not None:
            raise first_error
        return replies

    @property
    def restarts(self) -> list[int]:
        """Restarts per instance since this env was made."""
        return self._lives.restarts

    def _restart_client(self, i: int, why: BaseException | str) -> Client:
        """A fresh process for instance ``i`` and a client to it (:meth:`Connection.restart`)."""
        return self._lives.restart(self.connection, i, why)

    def _recycle_due(self, i: int) -> bool:
        """Leak protection: replace an instance after N episodes or above an RSS limit."""
        return self._lives.recycle_due(self.connection, i)

    def _recover(self, i: int, op: str, exc: Exception) -> dict[str, Any]:
        """Restart instance ``i`` and answer for it: its episode ends as truncated.

        ``info["instance_restarted"]`` says why. In ``SAME_STEP`` mode the restarted
        instance is reset at once (``final_obs`` is the last observation it delivered);
        otherwise the last observation is returned and the next step resets it.
        """
        why = {"instance_restarted": True, "restart_reason": type(exc).__name__}
        if op == "reset":
            reply = self._restart_and_reset(i, exc, self._reset_bodies.get(i, {"seed": None}))
            return {**reply, "info": {**reply["info"], **why}}
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            reply = self._restart_and_reset(i, exc, {"seed": None, "options": None})
            return {
                "obs": reply["obs"],
                "info": {**reply["info"], **why},
                "reward": 0.0,
                "terminated": False,
                "truncated": True,
                "final_obs": self._last_obs[i],
                "final_info": why,
            }
        self._restart_client(i, exc)
        return {
            "obs": self._last_obs[i],
            "info": why,
            "reward": 0.0,
            "terminated": False,
            "truncated": True,
        }

    def _restart_and_reset(self, i: int, why: Exception, body: dict[str, Any]) -> dict[str, Any]:
        """Restart instance ``i`` and reset it; a fresh process that dies or hangs in that
        first reset (a nested fault) is restarted again, within the restart limits.
        """
        while True:
            client = self._restart_client(i, why)
            try:
                return dict(client.request("reset", body))
            except (InstanceDiedError, InstanceTimeoutError) as fault:
                why = fault

    def _request_each(self, op: str, env_ids: list[int], body: Any = None) -> list[Any]:
        self._check_idle()
        for i in env_ids:
            self.clients[i].send(op, body)
        return self._gather(env_ids)

    def _wait_ready(self, size: int, timeout: float | None) -> list[int]:
        """Env ids whose replies have arrived, in arrival order, until ``size`` are ready."""
        limit = self.launch.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        poller = zmq.Poller()
        by_socket = {}
        for i in self._in_flight:
            socket = self.clients[i].socket
            poller.register(socket, zmq.POLLIN)
            by_socket[socket] = i
        ready: list[int] = []
        while len(ready) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                waiting = sorted(self._in_flight - set(ready))
                raise InstanceTimeoutError(
                    f"expected {size} replies within {limit:g} s, got {len(ready)}; "
                    f"envs {waiting} did not answer"
                )
            for socket, _ in poller.poll(min(100, max(1, int(remaining * 1000)))):
                i = by_socket[socket]
                if i not in ready:
                    ready.append(i)
                    poller.unregister(socket)
            for i in sorted(self._in_flight - set(ready)):
                if not self.clients[i].is_alive():
                    ready.append(i)  # recv() reports the death with the instance's log
        return ready[:size] if len(ready) > size else ready

    def _ids(self, env_ids: Iterable[int] | None) -> list[int]:
        if env_ids is None:
            return list(range(self.num_envs))
        ids = [int(i) for i in env_ids]
        bad = [i for i in ids if not 0 <= i < self.num_envs]
        if bad:
            raise IndexError(f"expected env ids in [0, {self.num_envs}), got {bad}")
        return ids

    def _check_open(self) -> None:
        if self._closed_connection:
            raise ClosedError("expected an open vector env, but it is closed")

    def _check_idle(self) -> None:
        self._check_open()
        if self._in_flight:
            raise AlreadyPendingCallError(
                f"expected no requests in flight, envs {sorted(self._in_flight)} await recv()"
            )


def _seeds(seed: int | list[int | None] | None, n: int) -> list[int | None]:
    if seed is None:
        return [None] * n
    if isinstance(seed, int | np.integer):
        return [int(seed) + i for i in range(n)]
    seeds = list(seed)
    if len(seeds) != n:
        raise ConfigError(f"expected {n} seeds, got {len(seeds)}")
    return seeds


def _check_mask(mask: Any, n: int) -> np.ndarray:
    """``mask`` if it is a usable reset mask; else :class:`ResetMaskError` (an assertion)."""
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (n,):
        raise ResetMaskError(
            f"expected options['reset_mask'] as a bool array of shape ({n},), got {mask!r}"
        )
    if not mask.any():
        raise ResetMaskError("expected options['reset_mask'] with at least one True entry")
    return mask


def __getattr__(name: str) -> Any:
    return moved_attribute(__name__, name)  # names that moved, for one release


__all__ = ["BlenderVectorEnv"]
