"""The solved examples the SQuAD prompt shows by default, shipped inside the package so that the library's
prompt is the harness's without a data dir: `pick_shots` over the train split of the shared SQuAD file
(dev-A, articles 1-20) picks exactly these two (a test checks it where that file is present).

Source: SQuAD v1.1 (Rajpurkar et al., 2016, "SQuAD: 100,000+ Questions for Machine Comprehension of Text"),
official dev set, articles Nikola_Tesla and Martin_Luther; licensed CC BY-SA 4.0.
"""

from __future__ import annotations

from compressions.data.squad import SquadExample

SOLVED_EXAMPLES = (
    SquadExample(
        id="56e1011ecd28a01900c6740b",
        title="Nikola_Tesla",
        context=(
            "On 7 January 1900, Tesla left Colorado Springs.[citation needed] His lab was torn down in 1904, "
            "and its contents were sold two years later to satisfy a debt."
        ),
        question="When did Tesla depart from Colorado Springs?",
        answers=["1900", "On 7 January 1900", "7 January 1900"],
        answer_starts=[13, 0, 3],
        article=3,
    ),
    SquadExample(
        id="56f8ca289b226e1400dd1007",
        title="Martin_Luther",
        context=(
            "A piece of paper was later found on which Luther had written his last statement. The statement was "
            'in Latin, apart from "We are beggars," which was in German.'
        ),
        question="What was later discovered written by Luther?",
        answers=["his last statement", "his last statement", "last statement"],
        answer_starts=[61, 61, 65],
        article=6,
    ),
)
