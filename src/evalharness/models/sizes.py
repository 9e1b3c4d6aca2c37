"""Input sizes to try a model that takes any size at: sizes no declared multiple divides."""

from __future__ import annotations


def odd_size(multiple: int = 1, minimum: int = 0, start: int = 37) -> int:
    """The smallest prime >= max(start, minimum + 1) that `multiple` does not divide: a
    size no power-of-two or window multiple divides, to test that dynamic sizes really are
    dynamic and to trace padding branches (37 unless the model asks for more)."""
    n = max(start, minimum + 1)
    while not (_is_prime(n) and (multiple == 1 or n % multiple)):
        n += 1
    return n


def odd_hw(multiple: int = 1, minimum: int = 0) -> tuple[int, int]:
    """Two different such sizes (height, width): no code can assume a square input."""
    first = odd_size(multiple, minimum)
    return first, odd_size(multiple, minimum, start=first + 1)


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, int(n**0.5) + 1))
