"""Stream rendered, annotated items from Blender instances into PyTorch (needs ``btgym[torch]``).

    dataset = StreamDataset("btgym/Cube-v0", num_instances=4, items=10_000, seed=0)
    loader = DataLoader(dataset, batch_size=32, num_workers=2, collate_fn=collate,
                        persistent_workers=True)
    for batch in loader:
        train(batch["obs"], batch["info"]["xy"])   # info by key: same-shape values as tensors
        dataset.set_params(new_randomization)      # feedback: reaches every instance

Each item is one frame of one instance: ``obs``, ``info``, and where it came from:
``env_id``, ``episode``, ``step``, ``seed`` (the episode's seed) and ``params``: the
action, i.e. the randomization, sent with the request that produced the frame (for
the first frame of an episode started inside a step, that step's action; for a seeded
reset, the parameters the instance has then, or a placeholder when the stream has none:
:func:`params_placeholder`; such a frame shows the scene's reset defaults). The same
seed and params reproduce the item.
Items batch with :func:`collate` and with torch's ``default_collate`` alike: ``info``
by key, fixed-shape values as tensors; :func:`collate` keeps values whose shape varies
(per-object annotations) as lists, and each item's info dict in ``batch["infos"]``,
where ``default_collate`` raises an error naming the key (an item's info is an
:class:`Info`, a ``dict`` torch's collate knows).

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

from btgym.data._collate import collate
from btgym.data._dataset import ReplayDataset, StreamDataset
from btgym.data._info import Info
from btgym.data._params import ParamsLayout, params_placeholder
from btgym.data._stream import IDLE_TIMEOUT

__all__ = [
    "IDLE_TIMEOUT",
    "Info",
    "ParamsLayout",
    "ReplayDataset",
    "StreamDataset",
    "collate",
    "params_placeholder",
]
