"""What the trainer and the Blender process share, and nothing else.

The Blender side imports only this package (plus :mod:`btgym.errors`, the one
exception tree both sides raise); a test keeps it that way
(``tests/test_boundary.py``). Nothing here imports the trainer side.

* :mod:`~btgym.wire.protocol`: the message format (msgpack header + raw buffers).
* :mod:`~btgym.wire.space_codec`: Gymnasium spaces described as plain data.
* :mod:`~btgym.wire.validation`: action checks run on both sides.
* :mod:`~btgym.wire.frame_files`: frames by reference through shared memory.
* :mod:`~btgym.wire._private_files`: files other local users cannot touch.
* :mod:`~btgym.wire.security`: CURVE keys and server sockets.
"""
