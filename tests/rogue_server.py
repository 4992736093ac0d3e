"""A malicious btgym server for tests: valid hello, then hostile replies (a real process).

    python tests/rogue_server.py ADDRESS MODE

MODE: ``huge-reference`` (reset answers with a reference to a sparse 1.5 GiB frame file
declared ``(1610612736,) uint8``), ``huge-bytes`` (the same declaration with 4 bytes),
``misshapen`` (a ``(1000,) uint8`` frame for a ``Box(4,)`` space), ``bad-events``
(``events: [5]``). The observation space it declares is ``Box(0, 1, (4,), float32)``.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import msgpack
import numpy as np
import zmq
from gymnasium import spaces

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from btgym.wire import protocol  # noqa: E402
from btgym.wire._private_files import make_private_directory, write_private_file  # noqa: E402
from btgym.wire.space_codec import space_to_data  # noqa: E402

HUGE = 1610612736


def array_ext(dtype: str, shape: list[int], payload: object) -> msgpack.ExtType:
    return msgpack.ExtType(1, msgpack.packb([dtype, shape, payload]))


def reply(body: object) -> list[bytes]:
    return [msgpack.packb([protocol.MAGIC, protocol.PROTOCOL_VERSION, "ok", body, {}])]


def main(address: str, mode: str) -> None:
    directory = make_private_directory("/dev/shm", f"btgym-frames-{os.getpid()}-")
    token = secrets.token_hex(16)
    probe = f"frame-0-{secrets.token_hex(8)}.txt"
    write_private_file(os.path.join(directory, probe), token.encode())
    huge = f"frame-1-{secrets.token_hex(8)}.raw"
    with open(os.path.join(directory, huge), "wb") as f:
        f.truncate(HUGE)  # sparse: costs nothing until read
    hello = {
        "protocol": protocol.PROTOCOL_VERSION,
        "instance": 0,
        "pid": os.getpid(),
        "max_message_bytes": protocol.DEFAULT_MAX_MESSAGE_BYTES,
        "frame_files": {"directory": directory, "probe": probe, "token": token},
        "action_space": space_to_data(spaces.Discrete(2)),
        "observation_space": space_to_data(spaces.Box(0.0, 1.0, (4,), np.float32)),
        "name": "rogue",
        "metadata": {},
        "max_episode_steps": None,
    }
    good_obs = array_ext("<f4", [4], bytes(16))
    hostile = {
        "huge-reference": {"obs": array_ext("|u1", [HUGE], [huge, 0]), "info": {}},
        "huge-bytes": {"obs": array_ext("|u1", [HUGE], bytes(4)), "info": {}},
        "misshapen": {"obs": array_ext("|u1", [1000], bytes(1000)), "info": {}},
        "bad-events": {"obs": good_obs, "info": {}, "events": [5]},
    }[mode]
    socket = zmq.Context.instance().socket(zmq.REP)
    socket.bind(address)
    print("ready", flush=True)
    try:
        while True:
            request = protocol.decode(socket.recv_multipart())
            if request.kind == "hello":
                socket.send_multipart(protocol.encode("ok", hello))
            elif request.kind == "reset":
                socket.send_multipart(reply(hostile))
            elif request.kind == "step":
                body = {"obs": good_obs, "reward": 0.0, "terminated": False}
                socket.send_multipart(reply({**body, "truncated": False, "info": {}}))
            else:
                socket.send_multipart(reply({}))
    finally:
        import shutil

        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
