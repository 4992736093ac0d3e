"""btgym's one exception tree.

Every error btgym raises for its own reasons (a bad argument, a broken message, an
instance that died, misuse) derives from :class:`BtgymError`, but for the few built-ins
named below::

    BtgymError
    ├── ConfigError                a bad argument or setting (also ValueError)
    ├── ProtocolError              a message broke the wire protocol
    │   ├── VersionMismatchError   peers speak different protocol versions
    │   ├── DecodeError            bytes that are not a btgym message
    │   ├── EncodeError            a value that cannot travel (no pickle fallback)
    │   └── LimitError             a message, queue or frame count over its bound
    ├── SpaceError                 a space that cannot be described on the wire
    ├── InvalidActionError         an action outside the action space (also ValueError)
    │   └── InvalidActionTypeError an action of the wrong type (also TypeError)
    ├── UnknownParamError          a parameter name the scene lacks (also KeyError)
    ├── ParamValueError            a parameter value out of bounds (also ValueError)
    ├── ObservationError           a scene returned an observation outside its space
    ├── RenderError                the renderer produced no frame for this step
    ├── RemoteError                the scene raised inside Blender (carries the remote traceback)
    │   └── RemoteAttributeError   no such scene attribute (also AttributeError)
    ├── InstanceError              a Blender instance is not usable
    │   ├── LaunchError            an instance failed to start or to become ready
    │   ├── InstanceDiedError      an instance's process exited
    │   ├── InstanceTimeoutError   an instance did not answer in time (also TimeoutError)
    │   └── AuthenticationError    the CURVE handshake failed (also PermissionError)
    ├── UntrustedPathError         a directory another user owns or can write (PermissionError)
    ├── StaleParamsError           a shared params row stayed mid-write (also TimeoutError)
    ├── ClosedError                the env or client was used after close()
    ├── UsedAfterForkError         an env, client or launcher used in a forked child
    ├── AlreadyPendingCallError    a call sent while an earlier one awaits its reply
    ├── NoAsyncCallError           a reply awaited with no call pending
    ├── ResetNeeded                a step before reset (or, autoreset off, after an end)
    ├── ResetMaskError             a bad options["reset_mask"] (also ValueError, AssertionError)
    └── NotPicklableError          an env pickled or copied: it owns processes (also TypeError)

``AlreadyPendingCallError``, ``NoAsyncCallError`` and ``ResetNeeded`` (also ``RuntimeError``)
are misuse of local state, named as Gymnasium names them; no message broke the protocol.
Where a caller expects a built-in error, the btgym error is also that built-in.

A few built-ins btgym raises as they are, where Python's own protocols name them:
``TypeError`` for an argument of the wrong type, ``KeyError`` for a missing key,
``IndexError`` for env indices out of range, ``AttributeError`` for a missing attribute,
``NotImplementedError`` for a scene method a scene must write, ``OSError`` (also
``FileNotFoundError``, ``FileExistsError``) for files, and ``AssertionError`` from
``blender_side.testing.check_scene``. Any other built-in comes from Python itself, numpy
or another library underneath, passed on as it came; an exception a scene raises inside
Blender comes back as :class:`RemoteError` (a protocol, action, observation, render or
space error as itself).

Messages say what was expected and what came.
"""

from __future__ import annotations


class BtgymError(Exception):
    """Base class of every btgym error."""


class ConfigError(BtgymError, ValueError):
    """A bad argument or setting: out of range, of the wrong form, or at odds with another.

    Also ``ValueError``, which Python raises for a value of the right type that is not
    usable (a file not in the expected format included).
    """


class ProtocolError(BtgymError):
    """A message broke the wire protocol."""


class VersionMismatchError(ProtocolError):
    """The two peers speak different protocol versions."""

    def __init__(self, expected: int, got: object, where: str = "peer") -> None:
        self.expected = expected
        self.got = got
        super().__init__(
            f"expected btgym protocol version {expected}, the {where} speaks version {got!r}; "
            "install the same btgym version on both sides"
        )


class DecodeError(ProtocolError):
    """Bytes that are not a valid btgym message."""


class EncodeError(ProtocolError):
    """A value that cannot be sent: btgym never falls back to pickle."""


class LimitError(ProtocolError):
    """A message, a queue or the frames kept for a client went over its documented bound."""


class SpaceError(BtgymError):
    """A Gymnasium space that cannot be described on the wire."""


class InvalidActionError(BtgymError, ValueError):
    """An action that does not belong to the action space; raised before anything is sent."""


class UnknownParamError(BtgymError, KeyError):
    """A randomization parameter name a scene does not have; the message names the closest."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class ParamValueError(BtgymError, ValueError):
    """A randomization parameter value out of its bounds, or not a number."""


class ObservationError(BtgymError, ValueError):
    """A scene returned an observation outside its observation space (checked in debug mode)."""


class RenderError(BtgymError, RuntimeError):
    """The renderer did not produce a frame for this step; the next step starts afresh."""


class RemoteError(BtgymError):
    """An exception raised by the scene inside Blender, re-raised in the trainer.

    ``remote_type`` is the scene's exception class name, ``remote_traceback`` its
    formatted traceback and ``instance`` the id of the Blender instance.
    """

    def __init__(
        self, remote_type: str, message: str, remote_traceback: str = "", instance: object = None
    ) -> None:
        self.remote_type = remote_type
        self.remote_message = message
        self.remote_traceback = remote_traceback
        self.instance = instance
        where = f"Blender instance {instance}" if instance is not None else "Blender instance"
        text = f"{remote_type} in {where}: {message}"
        if remote_traceback:
            text += "\n--- remote traceback ---\n" + remote_traceback.rstrip()
        super().__init__(text)


class InstanceError(BtgymError):
    """A Blender instance is not usable."""

    def __init__(self, message: str, instance: object = None, log_tail: str = "") -> None:
        self.instance = instance
        self.log_tail = log_tail
        text = message
        if log_tail:
            text += "\n--- last lines of the instance's log ---\n" + log_tail.rstrip()
        super().__init__(text)


class LaunchError(InstanceError):
    """A Blender instance failed to start or to become ready in time."""


class InstanceDiedError(InstanceError):
    """A Blender instance's process exited while it was in use."""


class InstanceTimeoutError(InstanceError, TimeoutError):
    """A Blender instance did not answer within the timeout."""


class AuthenticationError(InstanceError, PermissionError):
    """The server refused this client's CURVE handshake (no keys, or keys not on its list)."""


class UntrustedPathError(BtgymError, PermissionError):
    """A directory another local user owns or can write, where btgym keeps code or secrets.

    Caches, keys, logs and ready files: a symlink where a directory must be counts too.
    """


class StaleParamsError(BtgymError, TimeoutError):
    """A stream's shared params row stayed half written past its bound: the process that
    called ``set_params`` died while writing it. Also ``TimeoutError``.
    """


class ClosedError(BtgymError):
    """An env, client or launcher was used after ``close()``."""


class UsedAfterForkError(BtgymError, RuntimeError):
    """An env, client or launcher was used in a child forked after it was created.

    Sockets and Blender processes belong to the process that opened them: a child must
    create its own env (or use the ``spawn`` start method).
    """


class AlreadyPendingCallError(BtgymError, RuntimeError):
    """A request (``send``, ``step_async``, a synchronous call) while earlier ones await replies.

    Gymnasium's name for it; raised before anything is sent, so the env stays usable
    once the pending replies are received.
    """


class NoAsyncCallError(BtgymError, RuntimeError):
    """A reply asked for (``recv``, ``step_wait``) while no request is pending."""


class ResetNeeded(BtgymError, RuntimeError):
    """A step for an env that must be reset first: never reset, or ended with autoreset off."""


class ResetMaskError(BtgymError, ValueError, AssertionError):
    """A ``reset(options={"reset_mask": mask})`` whose mask is not a usable bool array.

    Also ``AssertionError``, which Gymnasium's vector envs raise there (they assert).
    """


class InvalidActionTypeError(InvalidActionError, TypeError):
    """An action of the wrong type (a scalar for a batch, a list for a dict, a float for an int).

    Also ``TypeError``, which Gymnasium raises there; still an :class:`InvalidActionError`.
    """


class RemoteAttributeError(RemoteError, AttributeError):
    """The scene has no such public attribute (``get_attr``, ``call``).

    Also ``AttributeError``, so ``hasattr``-style probing (SB3's ``has_attr``) works.
    """


class NotPicklableError(BtgymError, TypeError):
    """An env was pickled or deep-copied: it owns Blender processes and sockets.

    Also ``TypeError``, which ``pickle`` raises for objects that cannot travel.
    """


__all__ = [
    "AlreadyPendingCallError",
    "AuthenticationError",
    "BtgymError",
    "ClosedError",
    "ConfigError",
    "DecodeError",
    "EncodeError",
    "InstanceDiedError",
    "InstanceError",
    "InstanceTimeoutError",
    "InvalidActionError",
    "InvalidActionTypeError",
    "LaunchError",
    "LimitError",
    "NoAsyncCallError",
    "NotPicklableError",
    "ObservationError",
    "ParamValueError",
    "ProtocolError",
    "RemoteAttributeError",
    "RemoteError",
    "RenderError",
    "ResetMaskError",
    "ResetNeeded",
    "SpaceError",
    "StaleParamsError",
    "UnknownParamError",
    "UntrustedPathError",
    "UsedAfterForkError",
    "VersionMismatchError",
]
