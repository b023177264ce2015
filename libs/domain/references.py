"""Short human reference numbers (``SB-7K3Q9``) from a Redis sequence.

Consecutive sequence numbers are scattered by an invertible affine map so references do not
reveal volumes or look sequential, and Crockford base32 keeps them readable over the phone
(no I, L, O, U). Five characters cover 33 million conversations before the width grows.
"""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BITS = 25
_MULTIPLIER = 0x1B873593  # odd, so the map is a bijection modulo 2**bits
_OFFSET = 0x0B5F3A1


def reference_for(sequence: int, prefix: str = "SB-") -> str:
    """The reference of the ``sequence``-th conversation (distinct for distinct inputs)."""
    if sequence < 0:
        raise ValueError("sequence must not be negative")
    bits = _BITS
    while sequence >= 1 << bits:
        bits += 5
    mask = (1 << bits) - 1
    scrambled = (sequence * _MULTIPLIER + _OFFSET) & mask
    chars = []
    for _ in range(bits // 5):
        chars.append(ALPHABET[scrambled & 31])
        scrambled >>= 5
    return prefix + "".join(reversed(chars))
