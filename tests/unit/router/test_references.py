import re

import pytest

from libs.domain.references import reference_for


def test_references_are_distinct_short_and_readable() -> None:
    references = [reference_for(n) for n in range(1, 200_001)]
    assert len(set(references)) == len(references)
    assert all(re.fullmatch(r"SB-[0-9A-HJKMNP-TV-Z]{5}", r) for r in references)


def test_references_grow_instead_of_repeating() -> None:
    assert len(reference_for(2**25)) == len("SB-") + 6
    assert reference_for(2**25) != reference_for(0)


def test_negative_sequence_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        reference_for(-1)
