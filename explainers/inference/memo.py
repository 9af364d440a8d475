"""A least-recently-used memo bounded by bytes as well as entries, shared by the threads of a process.

Streamlit's caches bound entries only; one long text's attention weights or a 1 MB text copied into
each of its explanations make entries differ in size by a factor of a million, so a server's memory
would follow its visitors' texts. Here every entry is weighed when stored and the least recently
used ones go once the total passes `max_bytes`; an entry larger than the whole budget is computed
but not kept.
"""

from __future__ import annotations

import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import torch


def weigh(value: Any) -> int:
    """Bytes held by a value: tensors by their storage, bytes by length, anything else pickled."""
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.nelement()
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, torch.Tensor) for v in value):
        return sum(weigh(v) for v in value)
    return len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


class ByteLRU:
    def __init__(self, max_bytes: int, max_entries: int, copy: bool = False):
        """`copy`: store values pickled and hand out a fresh copy each time (like st.cache_data), so
        that a caller changing what it got cannot change what the next caller gets."""
        self.max_bytes, self.max_entries, self.copy = max_bytes, max_entries, copy
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value kept under `key`, else `default`; never computes."""
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._out(self._items[key][0])

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._out(self._items[key][0])
        value = compute()  # outside the lock: other keys are served meanwhile
        stored = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL) if self.copy else value
        size = weigh(stored)
        with self._lock:
            if size <= self.max_bytes:
                if key in self._items:
                    self.bytes -= self._items.pop(key)[1]
                self._items[key] = (stored, size)
                self.bytes += size
                while self.bytes > self.max_bytes or len(self._items) > self.max_entries:
                    self.bytes -= self._items.popitem(last=False)[1][1]
        return self._out(stored) if self.copy else value

    def _out(self, stored: Any) -> Any:
        return pickle.loads(stored) if self.copy else stored

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0
