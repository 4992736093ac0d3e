"""The type of a stream item's ``info`` (kept free of torch)."""

from __future__ import annotations


class Info(dict):
    """A stream item's info: a plain ``dict`` that torch's ``default_collate`` batches by
    key, with an error naming ``btgym.data.collate`` for values that vary in shape
    (registered by :mod:`btgym.data._collate`).
    """


__all__ = ["Info"]
