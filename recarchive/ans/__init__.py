"""Vectorized, interleaved rANS: the exact entropy coder under both codecs.

    msg = empty_message(lanes)                     # clean_message(lanes, seed) for bits-back
    push_symbols(msg, bank, rows, symbols)         # one symbol per lane
    data = message_to_bytes(msg)
    msg = message_from_bytes(data)
    symbols = pop_symbols(msg, bank, rows)         # last pushed, first popped

Symbols pop in the reverse order of pushing (a stack), per lane.
"""

from recarchive.ans.backend import NUMPY, Array, Backend, backend_of, torch_backend
from recarchive.ans.cdf import CdfBank, pop_symbols, push_symbols, validate_cdf
from recarchive.ans.message import (
    LOWER_BOUND,
    Message,
    clean_message,
    empty_message,
    message_like,
)
from recarchive.ans.serialize import (
    CorruptMessageError,
    message_from_bytes,
    message_num_bits,
    message_to_bytes,
)
from recarchive.ans.stack import StackUnderflowError, WordStack

__all__ = [
    "LOWER_BOUND",
    "NUMPY",
    "Array",
    "Backend",
    "CdfBank",
    "CorruptMessageError",
    "Message",
    "StackUnderflowError",
    "WordStack",
    "backend_of",
    "clean_message",
    "empty_message",
    "message_from_bytes",
    "message_like",
    "message_num_bits",
    "message_to_bytes",
    "pop_symbols",
    "push_symbols",
    "torch_backend",
    "validate_cdf",
]
