//! Language tags → one form for [`DocMeta::language`](crate::DocMeta::language): the ISO 639-1
//! two-letter code where the language has one (`en`, `fr`), else its ISO 639-3 three-letter
//! code (`yue`, `haw`) — the rule BCP 47 uses for the primary language subtag.
//!
//! Documents declare languages as `en-US`, `fr_FR`, `ENG`, `ger` (ISO 639-2/B) or `iw` (a
//! withdrawn code); whatlang detects ISO 639-3 codes (`eng`, `cmn`, `pes`).

/// ISO 639-1 codes with their ISO 639-2/T code (which is also the ISO 639-3 code), sorted by
/// the three-letter code.
const ISO_639_1: &[(&str, &str)] = &[
    ("aar", "aa"),
    ("abk", "ab"),
    ("afr", "af"),
    ("aka", "ak"),
    ("amh", "am"),
    ("ara", "ar"),
    ("arg", "an"),
    ("asm", "as"),
    ("ava", "av"),
    ("ave", "ae"),
    ("aym", "ay"),
    ("aze", "az"),
    ("bak", "ba"),
    ("bam", "bm"),
    ("bel", "be"),
    ("ben", "bn"),
    ("bis", "bi"),
    ("bod", "bo"),
    ("bos", "bs"),
    ("bre", "br"),
    ("bul", "bg"),
    ("cat", "ca"),
    ("ces", "cs"),
    ("cha", "ch"),
    ("che", "ce"),
    ("chu", "cu"),
    ("chv", "cv"),
    ("cor", "kw"),
    ("cos", "co"),
    ("cre", "cr"),
    ("cym", "cy"),
    ("dan", "da"),
    ("deu", "de"),
    ("div", "dv"),
    ("dzo", "dz"),
    ("ell", "el"),
    ("eng", "en"),
    ("epo", "eo"),
    ("est", "et"),
    ("eus", "eu"),
    ("ewe", "ee"),
    ("fao", "fo"),
    ("fas", "fa"),
    ("fij", "fj"),
    ("fin", "fi"),
    ("fra", "fr"),
    ("fry", "fy"),
    ("ful", "ff"),
    ("gla", "gd"),
    ("gle", "ga"),
    ("glg", "gl"),
    ("glv", "gv"),
    ("grn", "gn"),
    ("guj", "gu"),
    ("hat", "ht"),
    ("hau", "ha"),
    ("heb", "he"),
    ("her", "hz"),
    ("hin", "hi"),
    ("hmo", "ho"),
    ("hrv", "hr"),
    ("hun", "hu"),
    ("hye", "hy"),
    ("ibo", "ig"),
    ("ido", "io"),
    ("iii", "ii"),
    ("iku", "iu"),
    ("ile", "ie"),
    ("ina", "ia"),
    ("ind", "id"),
    ("ipk", "ik"),
    ("isl", "is"),
    ("ita", "it"),
    ("jav", "jv"),
    ("jpn", "ja"),
    ("kal", "kl"),
    ("kan", "kn"),
    ("kas", "ks"),
    ("kat", "ka"),
    ("kau", "kr"),
    ("kaz", "kk"),
    ("khm", "km"),
    ("kik", "ki"),
    ("kin", "rw"),
    ("kir", "ky"),
    ("kom", "kv"),
    ("kon", "kg"),
    ("kor", "ko"),
    ("kua", "kj"),
    ("kur", "ku"),
    ("lao", "lo"),
    ("lat", "la"),
    ("lav", "lv"),
    ("lim", "li"),
    ("lin", "ln"),
    ("lit", "lt"),
    ("ltz", "lb"),
    ("lub", "lu"),
    ("lug", "lg"),
    ("mah", "mh"),
    ("mal", "ml"),
    ("mar", "mr"),
    ("mkd", "mk"),
    ("mlg", "mg"),
    ("mlt", "mt"),
    ("mon", "mn"),
    ("mri", "mi"),
    ("msa", "ms"),
    ("mya", "my"),
    ("nau", "na"),
    ("nav", "nv"),
    ("nbl", "nr"),
    ("nde", "nd"),
    ("ndo", "ng"),
    ("nep", "ne"),
    ("nld", "nl"),
    ("nno", "nn"),
    ("nob", "nb"),
    ("nor", "no"),
    ("nya", "ny"),
    ("oci", "oc"),
    ("oji", "oj"),
    ("ori", "or"),
    ("orm", "om"),
    ("oss", "os"),
    ("pan", "pa"),
    ("pli", "pi"),
    ("pol", "pl"),
    ("por", "pt"),
    ("pus", "ps"),
    ("que", "qu"),
    ("roh", "rm"),
    ("ron", "ro"),
    ("run", "rn"),
    ("rus", "ru"),
    ("sag", "sg"),
    ("san", "sa"),
    ("sin", "si"),
    ("slk", "sk"),
    ("slv", "sl"),
    ("sme", "se"),
    ("smo", "sm"),
    ("sna", "sn"),
    ("snd", "sd"),
    ("som", "so"),
    ("sot", "st"),
    ("spa", "es"),
    ("sqi", "sq"),
    ("srd", "sc"),
    ("srp", "sr"),
    ("ssw", "ss"),
    ("sun", "su"),
    ("swa", "sw"),
    ("swe", "sv"),
    ("tah", "ty"),
    ("tam", "ta"),
    ("tat", "tt"),
    ("tel", "te"),
    ("tgk", "tg"),
    ("tgl", "tl"),
    ("tha", "th"),
    ("tir", "ti"),
    ("ton", "to"),
    ("tsn", "tn"),
    ("tso", "ts"),
    ("tuk", "tk"),
    ("tur", "tr"),
    ("twi", "tw"),
    ("uig", "ug"),
    ("ukr", "uk"),
    ("urd", "ur"),
    ("uzb", "uz"),
    ("ven", "ve"),
    ("vie", "vi"),
    ("vol", "vo"),
    ("wln", "wa"),
    ("wol", "wo"),
    ("xho", "xh"),
    ("yid", "yi"),
    ("yor", "yo"),
    ("zha", "za"),
    ("zho", "zh"),
    ("zul", "zu"),
];

/// Three-letter codes that are not the ISO 639-2/T code of a language with a two-letter
/// code but stand for one: ISO 639-2/B codes, and the ISO 639-3 codes of the main member of
/// a macrolanguage (whatlang detects `cmn` and `pes`, for instance).
const OTHER_THREE: &[(&str, &str)] = &[
    ("alb", "sq"),
    ("arb", "ar"),
    ("arm", "hy"),
    ("azj", "az"),
    ("baq", "eu"),
    ("bur", "my"),
    ("chi", "zh"),
    ("cmn", "zh"),
    ("cze", "cs"),
    ("dut", "nl"),
    ("ekk", "et"),
    ("fre", "fr"),
    ("geo", "ka"),
    ("ger", "de"),
    ("gre", "el"),
    ("ice", "is"),
    ("khk", "mn"),
    ("lvs", "lv"),
    ("mac", "mk"),
    ("mao", "mi"),
    ("may", "ms"),
    ("npi", "ne"),
    ("ory", "or"),
    ("per", "fa"),
    ("pes", "fa"),
    ("rum", "ro"),
    ("slo", "sk"),
    ("swh", "sw"),
    ("tib", "bo"),
    ("uzn", "uz"),
    ("wel", "cy"),
    ("ydd", "yi"),
    ("zsm", "ms"),
];

/// Two-letter codes withdrawn from ISO 639-1, and what replaced them.
const WITHDRAWN_TWO: &[(&str, &str)] = &[
    ("in", "id"),
    ("iw", "he"),
    ("ji", "yi"),
    ("jw", "jv"),
    ("mo", "ro"),
];

/// The language of a tag (`en`, `en-US`, `fr_FR`, `eng`, `ger`, `iw`) as its ISO 639-1 code,
/// or its ISO 639-3 code where it has no two-letter one. `None` for anything that is not a
/// language code, and for the special codes for no, several or undetermined languages.
pub(crate) fn normalize(tag: &str) -> Option<String> {
    let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
    if !primary.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let found = match primary.len() {
        2 => WITHDRAWN_TWO
            .iter()
            .find(|(old, _)| *old == primary)
            .map(|(_, new)| *new)
            .or_else(|| {
                ISO_639_1
                    .iter()
                    .find(|(_, two)| *two == primary)
                    .map(|(_, two)| *two)
            }),
        3 => {
            if ["mis", "mul", "und", "zxx"].contains(&primary.as_str())
                || primary.as_str() >= "qaa" && primary.as_str() <= "qtz"
            {
                return None;
            }
            let two = ISO_639_1
                .binary_search_by(|(three, _)| three.cmp(&primary.as_str()))
                .ok()
                .map(|i| ISO_639_1[i].1)
                .or_else(|| {
                    OTHER_THREE
                        .iter()
                        .find(|(three, _)| *three == primary)
                        .map(|(_, two)| *two)
                });
            // A language without a two-letter code keeps its three letters.
            return Some(two.map_or(primary, str::to_owned));
        }
        _ => None,
    };
    found.map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_become_two_letter_codes() {
        for (tag, want) in [
            ("en", Some("en")),
            ("EN", Some("en")),
            ("en-US", Some("en")),
            ("fr_FR", Some("fr")),
            (" de-CH-1996 ", Some("de")),
            ("eng", Some("en")),
            ("ENG", Some("en")),
            ("fra", Some("fr")),
            ("fre", Some("fr")),
            ("ger", Some("de")),
            ("zho", Some("zh")),
            ("cmn", Some("zh")),
            ("pes", Some("fa")),
            ("nob", Some("nb")),
            ("iw", Some("he")),
            ("in-ID", Some("id")),
            // No two-letter code: the three-letter one stays.
            ("yue", Some("yue")),
            ("haw-US", Some("haw")),
            // Not languages.
            ("und", None),
            ("mul", None),
            ("qaa", None),
            ("xx", None),
            ("", None),
            ("english", None),
            ("e1", None),
            ("x-klingon", None),
        ] {
            assert_eq!(normalize(tag).as_deref(), want, "{tag:?}");
        }
    }

    #[test]
    fn every_whatlang_language_has_a_code() {
        for lang in whatlang::Lang::all() {
            let code = normalize(lang.code()).unwrap_or_else(|| panic!("{}", lang.code()));
            assert_eq!(code.len(), 2, "{} -> {code}", lang.code());
        }
    }

    #[test]
    fn tables_are_sorted_and_consistent() {
        assert!(ISO_639_1.windows(2).all(|w| w[0].0 < w[1].0));
        for (three, two) in ISO_639_1.iter().chain(OTHER_THREE) {
            assert_eq!((three.len(), two.len()), (3, 2));
        }
    }
}
