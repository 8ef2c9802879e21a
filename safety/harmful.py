# ruff: noqa: E501  (tables of patterns read better one per line)
"""A small lexicon classifier for harmful answers: violence, self-harm, weapons.

Honest limits: it fires on explicit instruction-like phrasings ("how to make a
pipe bomb", "step 1 ... detonator"), not on paraphrase, other languages, or
harmful content phrased mildly; it will also fire on some news-like or
educational text that quotes such phrases. It is a last net behind the
generator's own alignment, and its flags go to human labelers.
"""

from __future__ import annotations

import re

from safety.normalize import fold, fold_leet
from safety.types import Category

_HOWTO = r"(?:how to|steps? to|instructions (?:for|to)|guide to|recipe for|step \d|first,? (?:you )?(?:take|mix|get))"

LEXICON: tuple[tuple[Category, str, float, str], ...] = (
    (Category.WEAPONS, rf"{_HOWTO}(?: \S+){{0,6}} (?:bomb|explosive|detonator|napalm|thermite|molotov|pipe bomb|ied|nerve agent|sarin|ricin|anthrax|bioweapon|chemical weapon|ghost gun|silencer|suppressor)", 0.9, "weapon_instructions"),
    (Category.WEAPONS, r"\b(?:ammonium nitrate|acetone peroxide|tatp|hmtd|black powder|potassium chlorate)\b(?: \S+){0,12} (?:mix|combine|detonat|ignite|fuse|pack)", 0.85, "explosive_synthesis"),
    (Category.WEAPONS, r"\b(?:3d[- ]print(?:ed)?|convert|modify)\b(?: \S+){0,5} (?:gun|rifle|pistol)\b(?: \S+){0,5} (?:full[- ]auto|automatic|untraceable)", 0.8, "weapon_modification"),
    (Category.SELF_HARM, r"\b(?:how to|best way to|easiest way to|painless(?:ly)? (?:way )?to|methods? (?:to|of|for)) (?:kill (?:my|your)self|commit suicide|end (?:my|your) life|self[- ]harm|cut (?:my|your)self|overdose)", 0.9, "self_harm_method"),
    (Category.SELF_HARM, r"\b(?:lethal|fatal) dose\b|\bhow many (?:pills|tablets)\b(?: \S+){0,4} (?:die|kill|lethal|overdose)", 0.7, "lethal_dose"),
    (Category.SELF_HARM, r"\byou should (?:kill yourself|end your life|hurt yourself)\b|\bkys\b", 0.9, "encourages_self_harm"),
    (Category.VIOLENCE, r"\b(?:how to|ways to|plan to|best way to) (?:kill|murder|poison|strangle|stab|shoot|kidnap|torture) (?:someone|somebody|people|a person|a human|him|her|them|my (?:wife|husband|boss|neighbou?r|partner|family|parents?)|a (?:man|woman|child|kid|neighbou?r|cop|police officer))\b", 0.85, "violence_instructions"),
    (Category.VIOLENCE, r"\b(?:i will|i'm going to|im going to|gonna) (?:kill|murder|shoot|stab|hurt) (?:you|him|her|them|everyone)\b", 0.7, "threat"),
    (Category.VIOLENCE, r"\b(?:mass shooting|school shooting|massacre)\b(?: \S+){0,6} (?:plan|how to|step|maximi[sz]e)", 0.85, "attack_planning"),
)  # fmt: skip

_COMPILED = [(c, re.compile(p), w, n) for c, p, w, n in LEXICON]


def classify_harm(text: str) -> tuple[Category, float, str] | None:
    """The strongest harm category in ``text`` with its score and rule, or ``None``."""
    folded = fold(text)[0]
    best: tuple[Category, float, str] | None = None
    for variant in {folded, fold_leet(folded)}:
        for category, pattern, weight, name in _COMPILED:
            if (best is None or weight > best[1]) and pattern.search(variant):
                best = (category, weight, name)
    return best
