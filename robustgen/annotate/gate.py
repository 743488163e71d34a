"""The chain quality gate: deterministic, model-free checks that a chain is worth training on.

Every chain from every teacher passes through ``gate_chain`` before its record is written, and ``robustgen
validate`` runs it again on written datasets. Each finding has a code and a short reason a model can act on:

- ``echo``: a part copies the prompt's instructions or field descriptions, or is empty boilerplate;
- ``leak``: the text reveals what the student will not have (a given answer, a clean/original image, ground truth);
- ``degradation_grounding``: the influence does not name or describe every applied degradation (or, for a
  clean image, does not say it is clean);
- ``question_grounding``: the reasoning never refers to what the question asks about;
- ``degeneration``: repeated phrases or sentences, text about itself, another language than the question's;
- ``consistency``: the conclusion points to another answer than the ANSWER tag.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from robustgen.annotate import prompts
from robustgen.annotate.wording import influence_of
from robustgen.schemas import AppliedDegradation, ReasoningChain
from robustgen.schemas.answers import answer_matches, option_index
from robustgen.schemas.recipe import ChainGate
from robustgen.schemas.record import ChainQuality

GATE_VERSION = "gate-1"
CODES = ("echo", "leak", "degradation_grounding", "question_grounding", "degeneration", "consistency")
PARTS = ("influence", "reasoning", "conclusion")

_STOP = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been being it its this that
    these those there their they them he she his her we our you your i me my not no yes do does did so than then
    what which who whom whose when where why how can could would should will shall may might must into onto over
    under about above below between after before while also very more most less least much many some any each
    every all both either neither one two three image picture photo photograph shown show shows seen see visible
    question answer option options choice choices following following best describe described""".split()
)
_BOILERPLATE = re.compile(
    r"^\W*(|n/?a|none|null|tbd|todo|\.\.\.|lorem ipsum.*|same as above|see above|no comment|placeholder|"
    r"influence|reasoning|conclusion|answer)\W*$",
    re.I,
)
#: instruction phrases that never belong in a chain (the prompt's own words about the reply's format)
_INSTRUCTION = re.compile(
    r"\bsums?\s+up\s+(all\s+)?(of\s+)?the\s+reasoning\b|\b1-3\s+sentences\b|\bjson\s+(object|format)\b|"
    r"\bthe\s+answer\s+field\b|\bwithout\s+saying\s+it\s+was\s+given\b|\bas\s+if\s+the\s+image\s+were\s+clean\b",
    re.I,
)
#: words of degraders' own descriptions too common to count as naming a degradation
_GENERIC = frozenset(
    """covers cover change changes changed details detail texture textures visible contrast colours colors colour
    lowering hiding hidden pushed natural either scene objects object becomes become harder making appear appears
    across whole entire parts surface region regions shapes lines edges image images pixels darker lighter
    brighter strong slightly through around within""".split()
)
#: (pattern, why it is a leak, words one of which it cannot match without: a cheap test before the regex runs)
_LEAKS: tuple[tuple[re.Pattern, str, tuple[str, ...]], ...] = (
    (
        re.compile(
            r"(?<!not the )(?<!not a )\b(correct|right|expected|given|provided|known|gold|reference|target)\s+"
            r"(answer|option|choice|label)\b",
            re.I,
        ),
        "says the answer was known",
        ("answer", "option", "choice", "label"),
    ),
    (re.compile(r"\bground[\s-]?truth\b", re.I), "mentions the ground truth", ("truth",)),
    (
        re.compile(
            r"\bthe\s+(clean|original|reference|pristine|undegraded|uncorrupted|unaltered|undistorted|source)\s+"
            r"(image|photo|picture|version|frame|copy)\b",
            re.I,
        ),
        "refers to a clean/original image the student never sees",
        (
            "clean",
            "original",
            "reference",
            "pristine",
            "undegraded",
            "uncorrupted",
            "unaltered",
            "undistorted",
            "source",
        ),
    ),
    (
        re.compile(r"\b(we|i)\s*(are|were|am|was|have been|'ve been|'m)\s+(told|given|shown|informed)\b", re.I),
        "says information was given",
        ("told", "given", "shown", "informed"),
    ),
    (
        re.compile(
            r"\b(the|this)\s+(prompt|task description|instructions?)\s+"
            r"(says|said|states|stated|gives|tells|told|mentions)\b",
            re.I,
        ),
        "quotes the prompt",
        ("prompt", "task description", "instruction"),
    ),
    (
        re.compile(
            r"\b(since|because|as|given\s+that|knowing\s+that)\s+the\s+((correct|right)\s+)?answer\s+is\b", re.I
        ),
        "reasons from the answer instead of to it",
        ("answer",),
    ),
    (
        re.compile(r"\b(was|were|been|is|are)\s+(given|provided|told|shown)\s+to\s+(you|me|us)\b", re.I),
        "says information was given",
        ("given", "provided", "told", "shown"),
    ),
)
_SELF_REFERENCE = re.compile(
    r"\bthis\s+(conclusion|reasoning|summary|response|explanation|analysis)\s+(sums up|summari[sz]es|concludes|"
    r"is based|explains|shows that|captures)|\bas\s+(mentioned|stated|discussed|explained)\s+(above|earlier|before)\b|"
    r"\bin\s+this\s+(response|answer|reply)\b|\bthe\s+above\s+(reasoning|analysis)\b",
    re.I,
)
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "blur": ("blurr", "smear", "soft", "focus", "unsharp", "fuzz", "smudg"),
    "noise": ("grain", "speckl", "nois", "static"),
    "compression": ("jpeg", "block", "artifact", "artefact", "compress", "quantiz", "quantis"),
    "fog": ("haze", "hazy", "mist", "veil"),
    "rain": ("streak", "drop", "wet"),
    "snow": ("flake",),
    "dark": ("dim", "shadow", "underexpos", "low light", "night"),
    "light": ("dim", "dark", "underexpos"),
    "exposure": ("bright", "washed", "blown", "clipp", "saturat"),
    "color": ("colour", "hue", "tint", "saturat"),
    "pixel": ("mosaic", "block"),
}
_STAGE_WORDS: dict[str, tuple[str, ...]] = {
    "acquisition": ("camera", "sensor", "lens", "capture", "shot"),
    "transmission": ("transmi", "network", "stream", "compress", "codec", "signal"),
    "environment": ("weather", "atmospher", "environment"),
    "postprocessing": ("edit", "process", "filter", "overlay"),
}
_CLEAN = re.compile(
    r"\b(clean|no\s+degradations?|not\s+degraded|undegraded|unaltered|intact|as\s+captured|no\s+visible\s+"
    r"(damage|degradation|artefacts?|artifacts?|distortion))\b",
    re.I,
)


@dataclass(frozen=True)
class Finding:
    code: str
    reason: str

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|\d+")


def _words(text: str) -> list[str]:
    return list(_tokens(text))


@lru_cache(maxsize=2048)
def _tokens(text: str) -> tuple[str, ...]:
    """The lower-case words of ``text`` (each check looks at the same parts: tokenized once)."""
    return tuple(_WORD.findall(text.lower()))


def _stem(word: str) -> str:
    return word if len(word) <= 4 else word[: max(4, math.ceil(len(word) * 0.6))]


def _mentions(words: set[str], term: str) -> bool:
    stem = _stem(term.lower())
    return any(w.startswith(stem) for w in words)


def _ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return list(zip(*(words[i:] for i in range(n)), strict=False))  # shorter slices end it


@lru_cache(maxsize=8)
def _prompt_ngrams(n: int) -> frozenset[tuple[str, ...]]:
    """The n-grams of every instruction the teacher is shown (field descriptions and task templates)."""
    texts = [prompts.SYSTEM, prompts.fix_request([]), prompts.influence_task([])]
    texts += [prompts.single_task("", None, None, [], (0, 0), None), prompts.conclusion_task("", None, None, "")]
    texts += [prompts.reasoning_task("", None, None, [], "", (0, 0), None), prompts.length_task("", (0, 0))]
    for model in (prompts.ChainBody, prompts.InfluenceBody, prompts.ReasoningBody, prompts.ConclusionBody):
        texts += [f.description or "" for f in model.model_fields.values()]
    grams: set[tuple[str, ...]] = set()
    for t in texts:
        grams.update(_ngrams(_words(t), n))
    return frozenset(grams)


def _longest_run(own: list[tuple[str, ...]], grams: frozenset[tuple[str, ...]]) -> int:
    """The most consecutive n-grams of ``own`` found in ``grams`` (a copied span is that plus n - 1 words)."""
    best = run = 0
    for g in own:
        run = run + 1 if g in grams else 0
        best = max(best, run)
    return best


def _echo(texts: dict[str, str], cfg: ChainGate) -> list[Finding]:
    out = []
    grams = _prompt_ngrams(cfg.echo_ngram)
    for part, text in texts.items():
        if not text.strip() or _BOILERPLATE.match(text.strip()):
            out.append(Finding("echo", f"the {part} is empty or boilerplate; write it for this image"))
            continue
        own = _ngrams(_words(text), cfg.echo_ngram)
        if _INSTRUCTION.search(text) or (own and own[0] in grams):  # the reply's format, or opens with the prompt
            out.append(Finding("echo", f"the {part} copies the instructions; write it about this image instead"))
            continue
        copied = sum(g in grams for g in own)
        # a part mostly made of the instructions, or holding a long span of them word for word
        long_span = (
            cfg.echo_span <= cfg.echo_ngram + copied - 1
            and _longest_run(own, grams) + cfg.echo_ngram - 1 >= cfg.echo_span
        )
        if own and (copied / len(own) >= cfg.echo_overlap or long_span):
            out.append(Finding("echo", f"the {part} copies the instructions; write it about this image instead"))
    return out


def _first_leak(text: str) -> tuple[re.Match, str] | None:
    """The first leak pattern that matches ``text`` (in ``_LEAKS`` order) and why, or None."""
    low = text.lower()
    for pattern, why, needs in _LEAKS:
        if any(w in low for w in needs) and (m := pattern.search(text)):
            return m, why
    return None


def _leak(texts: dict[str, str]) -> list[Finding]:
    out = []
    for part, text in texts.items():
        if found := _first_leak(text):
            m, why = found
            out.append(Finding("leak", f"the {part} {why} ({m.group(0)!r}); reason only from the degraded image"))
    if re.search(r"\b(the\s+)?answer\s+(is|was|=|:)", texts.get("influence", ""), re.I):
        out.append(Finding("leak", "the influence states the answer; it must only describe the degradations"))
    reasoning = texts.get("reasoning", "")
    first = re.split(r"(?<=[.!?])\s+", reasoning.strip(), maxsplit=1)[0]
    if re.search(r"\b(the\s+)?(correct\s+)?answer\s+(is|was|=|:)", first, re.I):
        out.append(Finding("leak", "the reasoning opens with the answer; reach it step by step"))
    return out


def degradation_terms(record: AppliedDegradation) -> frozenset[str]:
    """Words that name or describe a degradation: its label and name, synonyms, its stage's wording and the
    content words of its degrader's own influence description (cached per degrader)."""
    return _terms(record.label, record.name, record.stage.value, influence_of(record))


@lru_cache(maxsize=1024)
def _terms(label: str, name: str, stage: str, influence: str) -> frozenset[str]:
    terms = {w for w in _words(label) + name.split("_") if len(w) >= 3 and w not in _STOP}
    for w in list(terms):
        for key, syns in _SYNONYMS.items():
            if w.startswith(key) or key.startswith(w):
                terms.update(syns)
    terms.update(_STAGE_WORDS.get(stage, ()))
    terms.update(w for w in _words(influence) if len(w) >= 6 and w not in _STOP and w not in _GENERIC)
    return frozenset(terms)


def _degradation_grounding(influence: str, degradations: list[AppliedDegradation]) -> list[Finding]:
    if not degradations:
        if _CLEAN.search(influence):
            return []
        return [
            Finding("degradation_grounding", "no degradation was applied: the influence must say the image is clean")
        ]
    words = set(_words(influence))
    text = influence.lower()
    missing = [
        d.label
        for d in degradations
        if not any((" " in t and t in text) or (" " not in t and _mentions(words, t)) for t in degradation_terms(d))
    ]
    if missing:
        return [Finding("degradation_grounding", f"the influence never names or describes {', '.join(missing)}")]
    return []


def _content(text: str) -> set[str]:
    return {_stem(w) for w in _words(text) if len(w) >= 3 and w not in _STOP and not w.isdigit()}


def _question_grounding(reasoning: str, question: str, choices: list[str] | None) -> list[Finding]:
    keys = _content(question + " " + " ".join(choices or []))
    if not keys:
        return []
    said = set(_words(reasoning))
    if any(any(w.startswith(k) for w in said) for k in keys):
        return []
    return [Finding("question_grounding", "the reasoning never refers to what the question asks about or its options")]


_LETTER = re.compile(r"[^\W\d_]")
_ASCII_LETTERS = bytes(range(ord("A"), ord("Z") + 1)) + bytes(range(ord("a"), ord("z") + 1))


@lru_cache(maxsize=4096)
def _script(text: str) -> str | None:
    """The dominant writing system of the letters in ``text`` (LATIN, CYRILLIC, CJK, ...); None if few letters.
    ASCII text is Latin without looking further; otherwise at most 400 letters are classified."""
    if text.isascii():  # count the letters: what deleting them takes away
        raw = text.encode("ascii")
        return "LATIN" if len(raw) - len(raw.translate(None, _ASCII_LETTERS)) >= 20 else None
    counts: Counter[str] = Counter()
    for ch in _LETTER.findall(text)[:400]:
        name = unicodedata.name(ch, "")
        counts[name.split(" ", 1)[0] if name else "?"] += 1
    if sum(counts.values()) < 20:
        return None
    return counts.most_common(1)[0][0]


#: distinctive function words of languages that share the Latin script (a chain in German for an English
#: question is caught even though the letters look alike)
_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "English": frozenset("the and is are of to it that with not this which what than rather from".split()),
    "German": frozenset("der die das und ist nicht ein eine kein keine also auf mit dem den zu sich".split()),
    "French": frozenset("le les et est pas une des du sur avec dans ce qui que au".split()),
    "Spanish": frozenset("el los las y es una del con por para que se al lo".split()),
    "Italian": frozenset("il gli e è non una del della con per che di sono".split()),
    "Portuguese": frozenset("o os e é não um uma do da com para que em".split()),
    "Dutch": frozenset("de het en is niet een van met op dat die".split()),
}


#: each function word and the languages it belongs to (one pass over a text counts them all)
_LANGUAGES_OF: dict[str, tuple[str, ...]] = {
    w: tuple(lang for lang, fw in _FUNCTION_WORDS.items() if w in fw) for fw in _FUNCTION_WORDS.values() for w in fw
}


@lru_cache(maxsize=2048)
def _language(text: str) -> str | None:
    """The Latin-script language whose function words ``text`` uses most (None with fewer than 3 of them)."""
    hits = dict.fromkeys(_FUNCTION_WORDS, 0)
    for w in _tokens(text):
        for lang in _LANGUAGES_OF.get(w, ()):
            hits[lang] += 1
    best = max(hits, key=lambda k: hits[k])
    return best if hits[best] >= 3 else None


def _foreign(text: str, question: str) -> str | None:
    """'German' when ``text`` is written in another language than ``question``, else None."""
    q_script, t_script = _script(question), _script(text)
    if q_script and t_script and q_script != t_script:
        return f"{t_script.title()} script"
    if t_script == "LATIN" and q_script in ("LATIN", None):
        q_lang = _language(question) or "English"
        if len(set(_tokens(text)) & _FUNCTION_WORDS[q_lang]) >= 2:
            return None  # written in the question's language, whatever else it quotes
        t_lang = _language(text)
        if t_lang and t_lang != q_lang:
            return t_lang
    return None


def _degeneration(texts: dict[str, str], question: str, cfg: ChainGate) -> list[Finding]:
    out = _copied_parts(texts, cfg) if len(texts) == len(PARTS) else []
    for part, text in texts.items():
        toks = _tokens(text)
        grams = _ngrams(toks, cfg.repeat_ngram)
        repeats = len(grams) - len(set(grams))  # an n-gram seen k times adds k - 1
        top = Counter(grams).most_common(1) if repeats >= cfg.max_repeats - 1 else []
        if top and top[0][1] >= cfg.max_repeats:
            out.append(Finding("degeneration", f"the {part} repeats {' '.join(top[0][0])!r} {top[0][1]} times"))
            continue
        # a sentence of 4+ words said twice repeats its first 4 words: with no repeated n-gram (n <= 4), none is
        if repeats or cfg.repeat_ngram > 4:
            sentences = [" ".join(_words(s)) for s in re.split(r"(?<=[.!?])\s+", text) if len(_words(s)) >= 4]
            if len(sentences) != len(set(sentences)):
                out.append(Finding("degeneration", f"the {part} repeats a sentence"))
                continue
        if any(a == b == c == d for a, b, c, d in zip(toks, toks[1:], toks[2:], toks[3:], strict=False)):
            out.append(Finding("degeneration", f"the {part} repeats a word over and over"))
            continue
        m = _SELF_REFERENCE.search(text)
        if m:
            out.append(Finding("degeneration", f"the {part} talks about itself ({m.group(0)!r}); state the content"))
            continue
        foreign = _foreign(text, question)
        if foreign:
            out.append(Finding("degeneration", f"the {part} is written in {foreign}, not in the question's language"))
    return out


def _copied_parts(texts: dict[str, str], cfg: ChainGate) -> list[Finding]:
    """Parts that repeat one another (a conclusion that is the reasoning again, an influence pasted twice)."""
    grams = {p: set(_ngrams(_words(texts[p]), cfg.repeat_ngram)) for p in PARTS}
    for a, b in (("influence", "reasoning"), ("reasoning", "conclusion"), ("influence", "conclusion")):
        large = max(grams[a], grams[b], key=len)
        if len(large) >= 5 and len(grams[a] & grams[b]) / len(large) >= 0.6:
            return [Finding("degeneration", f"the {b} repeats the {a}; each part must say something of its own")]
    return []


def _named_options(text: str, choices: list[str]) -> set[int]:
    found: set[int] = set()
    for m in re.finditer(r"\b(?:option|choice)\s*\(?([0-9]+|[A-Ja-j])\b\)?", text, re.I):
        idx = option_index(m.group(1), choices)
        if idx is not None:
            found.add(idx)
    norm = " " + " ".join(_words(text)) + " "
    for i, c in enumerate(choices):
        cw = " ".join(_words(c))
        if cw and f" {cw} " in norm:
            found.add(i)
    return found


def _consistency(chain: ReasoningChain, choices: list[str] | None) -> list[Finding]:
    if choices:
        want = option_index(chain.answer, choices)
        named = _named_options(chain.conclusion, choices)
        if want is not None and named and want not in named:
            others = ", ".join(str(i) for i in sorted(named))
            return [Finding("consistency", f"the conclusion points to option {others}, the ANSWER is {want}")]
        return []
    m = re.search(r"\banswer\s+(?:is|would be|must be)\s+([^.;,]+)", chain.conclusion, re.I)
    if m and not answer_matches(m.group(1), chain.answer):
        return [Finding("consistency", f"the conclusion gives {m.group(1).strip()!r}, the ANSWER is {chain.answer!r}")]
    return []


def gate_chain(
    chain: ReasoningChain,
    degradations: list[AppliedDegradation],
    question: str,
    choices: list[str] | None,
    cfg: ChainGate | None = None,
) -> list[Finding]:
    """Every finding of the enabled checks, in ``CODES`` order; empty when the chain passes."""
    cfg = cfg or ChainGate()
    texts = {p: getattr(chain, p) for p in PARTS}
    found = _checks(texts, degradations, question, choices, cfg)
    if cfg.consistency:
        normal = chain.model_copy(update={p: normalize(getattr(chain, p)) for p in (*PARTS, "answer")})
        found += _consistency(normal, [normalize(c) for c in choices] if choices else choices)
    return found


def gate_part(
    part: str,
    text: str,
    degradations: list[AppliedDegradation],
    question: str,
    choices: list[str] | None,
    cfg: ChainGate | None = None,
) -> list[Finding]:
    """The findings that concern one part alone (a teacher writing the chain step by step checks each step)."""
    return _checks({part: text}, degradations, question, choices, cfg or ChainGate())


#: Cyrillic and Greek letters drawn like Latin ones (UTS #39 confusables, the common ones), folded to Latin
_CONFUSABLE = str.maketrans(
    "аеорсухіјѕԁԛԝӏАВЕКМНОРСТХУІЈЅαονρικΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxijsdqwlABEKMHOPCTXYIJSaovpikABEZHIKMNOPTYX",
)
_CONFUSABLES = frozenset(chr(c) for c in _CONFUSABLE)
_WORDISH = re.compile(r"\w+")


def _fold_word(m: re.Match, latin_text: bool = False) -> str:
    word = m.group()
    if word.isascii() or not any(ch in _CONFUSABLES for ch in word):
        return word
    if any(ch.isascii() and ch.isalpha() for ch in word):  # a Latin word with look-alike letters in it
        return word.translate(_CONFUSABLE)
    if latin_text and all(ch in _CONFUSABLES for ch in word if ch.isalpha()):
        return word.translate(_CONFUSABLE)  # "сору" spelt in look-alikes inside English text
    return word  # a word of another script (Greek "και", Russian "оса"): the language check sees it as it is


def _mostly_latin(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    return bool(letters) and sum(ch.isascii() for ch in letters) * 2 > len(letters)


def normalize(text: str) -> str:
    """Text as every check reads it: NFKC, invisible format characters (zero-width spaces, joiners, bidi marks)
    removed, and Cyrillic or Greek look-alike letters inside Latin words folded to Latin, so a chain cannot pass a
    check by spelling a phrase with characters that merely look the same."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    latin = _mostly_latin(text)
    return _WORDISH.sub(lambda m: _fold_word(m, latin), text)


def _checks(
    texts: dict[str, str],
    degradations: list[AppliedDegradation],
    question: str,
    choices: list[str] | None,
    cfg: ChainGate,
) -> list[Finding]:
    texts = {k: normalize(v) for k, v in texts.items()}
    question = normalize(question)
    choices = [normalize(c) for c in choices] if choices else choices
    found: list[Finding] = []
    if cfg.echo:
        found += _echo(texts, cfg)
    if cfg.leak:
        found += _leak(texts)
    if cfg.degradation_grounding and "influence" in texts:
        found += _degradation_grounding(texts["influence"], degradations)
    if cfg.question_grounding and "reasoning" in texts:
        found += _question_grounding(texts["reasoning"], question, choices)
    if cfg.degeneration:
        found += _degeneration(texts, question, cfg)
    return found


def quality_of(findings: list[Finding], cfg: ChainGate | None = None) -> ChainQuality:
    """The record's ``chain_quality`` block: each check ok, off, or its first reason."""
    cfg = cfg or ChainGate()
    checks = {code: ("ok" if getattr(cfg, code) else "off") for code in CODES}
    for f in findings:
        if checks[f.code] == "ok":
            checks[f.code] = f.reason
    return ChainQuality(version=GATE_VERSION, passed=not findings, checks=checks)
