"""LocalAgreement: words become stable only when consecutive hypotheses agree."""

from hypothesis import given
from hypothesis import strategies as st

from edged.asr.agreement import LocalAgreement


def test_nothing_is_stable_after_one_hypothesis() -> None:
    agreement = LocalAgreement(2)
    assert agreement.update(["ever", "tried"]) == []


def test_common_prefix_of_two_hypotheses_commits() -> None:
    agreement = LocalAgreement(2)
    agreement.update(["ever", "tried", "ever"])
    assert agreement.update(["ever", "tried,", "ever", "failed"]) == ["ever", "tried,", "ever"]


def test_case_and_punctuation_do_not_break_agreement() -> None:
    agreement = LocalAgreement(2)
    agreement.update(["Ever", "tried."])
    assert agreement.update(["ever", "tried,", "ever"]) == ["ever", "tried,"]


def test_disagreement_commits_nothing_new_and_retracts_nothing() -> None:
    agreement = LocalAgreement(2)
    agreement.update(["turn", "on", "the", "light"])
    assert agreement.update(["turn", "on", "the", "lamp"]) == ["turn", "on", "the"]
    assert agreement.update(["return", "of", "the", "lamp"]) == ["turn", "on", "the"]


def test_three_way_agreement_needs_three_hypotheses() -> None:
    agreement = LocalAgreement(3)
    agreement.update(["a", "b"])
    assert agreement.update(["a", "b"]) == []
    assert agreement.update(["a", "c"]) == ["a"]


def test_reset_forgets_committed_words() -> None:
    agreement = LocalAgreement(2)
    agreement.update(["a"])
    agreement.update(["a"])
    agreement.reset()
    assert agreement.committed == []
    assert agreement.update(["b"]) == []


words = st.lists(st.sampled_from(["a", "b", "c", "A.", "b,"]), max_size=8)


@given(st.lists(words, min_size=1, max_size=12))
def test_committed_prefix_only_grows(hypotheses: list[list[str]]) -> None:
    agreement = LocalAgreement(2)
    previous: list[str] = []
    for hypothesis in hypotheses:
        committed = agreement.update(hypothesis)
        assert committed[: len(previous)] == previous
        assert len(committed) <= max(len(previous), len(hypothesis))
        previous = committed
