"""English Punkt sentence-splitter parameters built by the project, so IFEval runs offline.

lm-eval's IFEval counts sentences (and word-tokenizes) with nltk's Punkt model `punkt_tab`, which only
`nltk.download` fetches and no pip or Debian package ships. nltk's own model is learnt from a large news
corpus; this one is written out from the curated lists below. Punkt still decides every boundary with its own
algorithm: these lists only tell it which tokens before a period are abbreviations and which capitalised
words start sentences. When nltk finds a real `punkt_tab` installed, it is used instead.
"""

from __future__ import annotations

from pathlib import Path

from gate.files import atomic_write_text

LANGUAGE = "english"
RESOURCE = f"tokenizers/punkt_tab/{LANGUAGE}/"

# Lower case, without the final period, as Punkt stores them: a period after one of these is not a sentence
# end unless the next word is a known sentence starter. Words that are also common nouns or verbs when they
# end a sentence ("sun", "sat", "wed", "in") are left out on purpose.
ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "messrs", "mme", "mlle", "dr", "prof", "rev", "hon", "gen", "col", "maj", "capt",
        "lt", "sgt", "cpl", "gov", "sen", "rep", "pres", "supt", "st", "jr", "sr", "esq", "e.g", "i.e", "etc",
        "vs", "viz", "cf", "al", "ca", "approx", "ibid", "ph.d", "m.d", "b.a", "m.a", "b.sc", "m.sc", "d.c",
        "u.s", "u.s.a", "u.k", "u.n", "e.u", "a.m", "p.m", "inc", "ltd", "co", "corp", "llc", "plc", "bros",
        "dept", "univ", "assn", "assoc", "intl", "govt", "mfg", "mt", "ft", "ave", "blvd", "rd", "hwy", "apt",
        "no", "nos", "vol", "vols", "fig", "figs", "eq", "ed", "eds", "pp", "ch", "para", "sec", "ref", "tel",
        "ext", "attn", "misc", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
        "dec", "mon", "tue", "tues", "thu", "thur", "thurs", "fri", "lb", "lbs", "oz", "pt", "qt", "gal", "yd",
        "hr", "hrs", "min", "max", "km", "kg", "cm", "mm",
    }
)

# Words that, capitalised after an abbreviation, start a new sentence. In the learnt model these come from
# counts; here they also get the orthographic record "seen capitalised at a sentence start and in lower
# case inside sentences", which is what lets Punkt end a sentence after an initial ("plan B. The ...").
SENTENCE_STARTERS = frozenset(
    {
        "the", "a", "an", "this", "that", "these", "those", "it", "its", "he", "she", "they", "we", "you",
        "there", "here", "his", "her", "their", "our", "my", "your", "in", "on", "at", "for", "from", "with",
        "by", "to", "as", "if", "when", "while", "after", "before", "since", "because", "although", "though",
        "but", "and", "or", "so", "yet", "however", "then", "therefore", "thus", "also", "finally", "first",
        "second", "third", "next", "last", "one", "some", "many", "most", "each", "every", "all", "both",
        "such", "what", "which", "who", "how", "why", "where",
    }
)

_ORTHO_BEG_UC = 1 << 1  # nltk.tokenize.punkt's flags: capitalised at a sentence start ...
_ORTHO_MID_LC = 1 << 5  # ... and in lower case inside a sentence


def punkt_files() -> dict[str, str]:
    """The four files of a `punkt_tab/english` model, by name."""
    starters = sorted(SENTENCE_STARTERS)
    return {
        "abbrev_types.txt": "\n".join(sorted(ABBREVIATIONS)),
        "collocations.tab": "",
        "sent_starters.txt": "\n".join(starters),
        "ortho_context.tab": "\n".join(f"{word}\t{_ORTHO_BEG_UC | _ORTHO_MID_LC}" for word in starters),
    }


def register_punkt(data_root: Path) -> None:
    """Make nltk find an English `punkt_tab`: its own when installed, else this module's written under data_root."""
    import nltk

    try:
        nltk.data.find(RESOURCE)
        return
    except LookupError:
        pass
    model_dir = data_root / RESOURCE
    for name, text in punkt_files().items():
        atomic_write_text(model_dir / name, text)
    nltk.data.path.append(str(data_root))
