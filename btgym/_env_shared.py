"""What :class:`btgym.BlenderEnv`, :class:`btgym.BlenderVectorEnv` and the stream share:
the render-mode rules, the refusal to be pickled, and draining scene events.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import gymnasium as gym

from btgym.errors import ConfigError, NotPicklableError


def check_render_mode(render_mode: str | None, metadata: dict[str, Any]) -> None:
    """Refuse a ``render_mode`` the env's metadata does not list (None is always fine)."""
    if render_mode is not None and render_mode not in metadata["render_modes"]:
        raise ConfigError(
            f"expected render_mode in {metadata['render_modes']} or None, got {render_mode!r}"
        )


def can_render(render_mode: str | None) -> bool:
    """Whether ``render()`` renders; without a render mode it warns, as Gymnasium's envs do."""
    if render_mode is None:
        gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
        return False
    return True


def not_picklable(env: object) -> NotPicklableError:
    """The error for pickling or copying an env: it is a handle on processes, not data."""
    return NotPicklableError(
        f"expected a picklable object, got {type(env).__name__}: a btgym env owns Blender "
        "processes and sockets, which cannot be copied into another process or object; ship "
        "its spec instead and make the env where it runs: gymnasium.make(env.spec) (or the "
        "id and keyword arguments it was made with)"
    )


def pop_events(clients: Iterable[Any]) -> list[dict[str, Any]]:
    """Drain the scene events the clients received, in their order (see ``Scene.emit``)."""
    events: list[dict[str, Any]] = []
    for client in clients:
        while client.events:
            events.append(client.events.popleft())
    return events


__all__ = ["can_render", "check_render_mode", "not_picklable", "pop_events"]
