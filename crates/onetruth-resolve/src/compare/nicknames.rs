//! The built-in nickname table: canonical given names and their diminutives and common spelling
//! variants, lowercase ASCII as [`super::normalize_name`] produces them.
//!
//! Two names are nicknames of each other when one group holds both: "Bill" and "William", and
//! also "Bill" and "Will" (both William). A diminutive may sit in several groups ("Alex" in
//! Alexander and Alexandra, "Sam" in Samuel and Samantha), but two canonical names are related
//! only through a group that holds both, so Alexander and Alexandra are *not* nicknames of each
//! other (their spellings are close enough for Jaro–Winkler anyway).
//!
//! Deliberately absent: "John" is not in Jonathan's group. John is a name of its own (its
//! diminutives are Johnny and Jack); "Jon" is short for Jonathan. "Jon" vs "John" is a spelling
//! difference and is left to Jaro–Winkler, which rates it `close`. Cross-language cognates
//! (Johann/Juan/Ivan) are also absent: they are different names, not diminutives.

use std::collections::HashMap;
use std::sync::OnceLock;

/// `(canonical name, diminutives and variants)`.
static GROUPS: &[(&str, &[&str])] = &[
    // Men's names.
    (
        "william",
        &["bill", "billy", "will", "willy", "willie", "liam"],
    ),
    (
        "robert",
        &["bob", "bobby", "rob", "robbie", "robby", "bert"],
    ),
    ("jonathan", &["jon", "jonny", "jonty"]),
    ("john", &["johnny", "johnnie", "jack"]),
    ("james", &["jim", "jimmy", "jimmie", "jamie", "jem"]),
    (
        "richard",
        &["rick", "ricky", "rich", "richie", "dick", "dickie"],
    ),
    ("michael", &["mike", "mikey", "mick", "mickey", "micky"]),
    (
        "alexander",
        &["alex", "alec", "al", "sasha", "sandy", "xander", "lex"],
    ),
    ("christopher", &["chris", "kit", "topher"]),
    ("thomas", &["tom", "tommy", "thom"]),
    ("joseph", &["joe", "joey"]),
    ("daniel", &["dan", "danny"]),
    ("matthew", &["matt", "matty"]),
    ("anthony", &["tony", "antony"]),
    ("charles", &["charlie", "chuck", "chas", "chaz", "chip"]),
    ("edward", &["ed", "eddie", "eddy", "ted", "teddy", "ned"]),
    ("theodore", &["ted", "teddy", "theo"]),
    ("patrick", &["pat", "paddy"]),
    ("samuel", &["sam", "sammy"]),
    ("benjamin", &["ben", "benny", "benji", "benjy"]),
    ("nicholas", &["nick", "nicky", "nico", "nicolas"]),
    ("steven", &["stephen", "steve", "stevie"]),
    ("andrew", &["andy", "drew"]),
    ("david", &["dave", "davey", "davy"]),
    ("jacob", &["jake"]),
    ("joshua", &["josh"]),
    ("timothy", &["tim", "timmy"]),
    ("kenneth", &["ken", "kenny"]),
    ("ronald", &["ron", "ronnie", "ronny"]),
    ("donald", &["don", "donnie", "donny"]),
    ("gregory", &["greg", "gregg"]),
    ("raymond", &["ray"]),
    ("lawrence", &["laurence", "larry"]),
    ("gerald", &["gerry", "jerry"]),
    ("peter", &["pete"]),
    ("frederick", &["fred", "freddie", "freddy", "frederic"]),
    ("francis", &["frank", "frankie", "fran"]),
    ("franklin", &["frank", "frankie"]),
    ("henry", &["hank", "harry", "hal"]),
    ("harold", &["harry", "hal"]),
    ("walter", &["walt", "wally"]),
    ("albert", &["al", "bert", "bertie"]),
    ("alfred", &["alf", "alfie", "fred"]),
    ("arthur", &["art", "artie"]),
    ("eugene", &["gene"]),
    ("leonard", &["leo", "len", "lenny"]),
    ("louis", &["lou", "louie", "lewis"]),
    ("philip", &["phil", "phillip"]),
    ("vincent", &["vince", "vinny", "vinnie"]),
    ("zachary", &["zach", "zack", "zac"]),
    ("nathaniel", &["nathan", "nate", "nat"]),
    ("nathan", &["nate"]),
    ("douglas", &["doug"]),
    ("bradley", &["brad"]),
    ("gabriel", &["gabe"]),
    ("jeffrey", &["jeff", "geoffrey", "geoff"]),
    ("stanley", &["stan"]),
    ("russell", &["russ"]),
    ("mitchell", &["mitch"]),
    ("maximilian", &["max"]),
    ("maxwell", &["max"]),
    ("abraham", &["abe"]),
    ("isaac", &["ike"]),
    ("jose", &["pepe"]),
    ("francisco", &["paco", "pancho"]),
    ("ignacio", &["nacho"]),
    ("manuel", &["manolo", "manny"]),
    ("johannes", &["johann", "hans"]),
    ("friedrich", &["fritz"]),
    // Women's names.
    (
        "elizabeth",
        &[
            "elisabeth",
            "liz",
            "lizzie",
            "lizzy",
            "beth",
            "betty",
            "bette",
            "betsy",
            "eliza",
            "libby",
            "liza",
            "lisa",
            "elsie",
        ],
    ),
    (
        "margaret",
        &[
            "maggie", "meg", "peggy", "marge", "margie", "madge", "margo", "margot", "greta",
        ],
    ),
    (
        "katherine",
        &[
            "catherine",
            "kathryn",
            "katharine",
            "kate",
            "katie",
            "katy",
            "kathy",
            "cathy",
            "kat",
            "kitty",
            "kay",
        ],
    ),
    ("kathleen", &["kathy", "kate", "katie", "kath"]),
    (
        "alexandra",
        &[
            "alex", "alexa", "sandra", "sandy", "sasha", "lexi", "lexie", "allie",
        ],
    ),
    ("jennifer", &["jen", "jenn", "jenny", "jennie", "jenni"]),
    (
        "patricia",
        &[
            "pat", "patty", "patti", "trish", "tricia", "trisha", "patsy",
        ],
    ),
    ("susan", &["sue", "susie", "suzie", "suzy"]),
    ("rebecca", &["becky", "becca", "becki"]),
    ("deborah", &["debra", "deb", "debbie", "debby"]),
    ("samantha", &["sam", "sammy", "sammie"]),
    (
        "victoria",
        &["vicky", "vicki", "vickie", "tori", "tory", "vic"],
    ),
    (
        "christina",
        &[
            "christine",
            "kristina",
            "kristine",
            "chris",
            "chrissy",
            "kris",
            "tina",
        ],
    ),
    ("mary", &["molly", "polly", "mamie"]),
    ("barbara", &["barb", "barbie", "babs"]),
    ("dorothy", &["dot", "dottie", "dolly"]),
    ("jessica", &["jess", "jessie"]),
    ("sarah", &["sara", "sally", "sadie"]),
    ("anne", &["ann", "anna", "annie", "nan"]),
    ("nancy", &["nan", "nance"]),
    ("amanda", &["mandy", "manda"]),
    ("kimberly", &["kimberley", "kim"]),
    ("abigail", &["abby", "abbie", "gail"]),
    ("angela", &["angie"]),
    ("melissa", &["mel", "missy", "lissa"]),
    ("michelle", &["michele", "shelly", "shelley"]),
    ("stephanie", &["steph", "stevie"]),
    ("cynthia", &["cindy"]),
    ("virginia", &["ginny", "ginger"]),
    ("theresa", &["teresa", "terry", "terri", "tess", "tessa"]),
    ("judith", &["judy", "jude"]),
    ("pamela", &["pam"]),
    ("valerie", &["val"]),
    ("gwendolyn", &["gwen", "wendy"]),
    ("josephine", &["jo", "josie"]),
    ("joanna", &["joanne", "jo"]),
    ("eleanor", &["ellie", "nell", "nellie", "nora"]),
    ("helen", &["nell", "nellie"]),
    ("caroline", &["carolyn", "carol", "carrie"]),
    ("natalie", &["natalia", "nat"]),
    ("natasha", &["tasha"]),
    ("madeline", &["madeleine", "madelyn", "maddie", "maddy"]),
    ("olivia", &["liv", "livvy"]),
    (
        "isabella",
        &["isabel", "isabelle", "bella", "belle", "izzy", "izzie"],
    ),
    ("florence", &["flo", "flossie"]),
    ("harriet", &["hattie"]),
    ("jacqueline", &["jackie", "jacqui"]),
    ("penelope", &["penny"]),
    ("sophia", &["sophie"]),
    ("gabrielle", &["gabriella", "gabby", "gabi"]),
    ("emily", &["emmy", "em"]),
    ("dolores", &["lola"]),
    // Spanish, Portuguese and Italian diminutives.
    ("alejandro", &["alex", "alejo", "ale"]),
    ("alessandro", &["sandro", "ale"]),
    ("guadalupe", &["lupe", "lupita"]),
    ("eduardo", &["lalo", "edu"]),
    ("giuseppe", &["beppe", "peppe", "pino"]),
    ("giovanni", &["gianni", "vanni"]),
    ("francesca", &["fran", "franca", "cesca"]),
    // Slavic diminutives.
    ("aleksandr", &["sasha", "sanya", "alex"]),
    ("mikhail", &["misha"]),
    ("dmitri", &["dima", "dmitry"]),
    ("ekaterina", &["katya", "katia"]),
    ("natalia", &["natasha", "nata"]),
    ("malgorzata", &["gosia", "malgosia"]),
    // Arabic and West/Southern African short forms.
    ("mohammed", &["mo", "moe"]),
    ("oluwaseun", &["seun"]),
    ("adebayo", &["bayo"]),
    ("thandiwe", &["thandi"]),
];

/// Name → indices of the groups that hold it.
fn index() -> &'static HashMap<&'static str, Vec<u16>> {
    static INDEX: OnceLock<HashMap<&'static str, Vec<u16>>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut map: HashMap<&'static str, Vec<u16>> = HashMap::new();
        for (i, (canonical, variants)) in GROUPS.iter().enumerate() {
            let i = u16::try_from(i).expect("fewer than 65536 nickname groups");
            for name in std::iter::once(canonical).chain(variants.iter()) {
                map.entry(name).or_default().push(i);
            }
        }
        map
    })
}

/// The canonical names of the nickname groups that hold `name` (normalized), e.g. `alex` →
/// `["alexander", "alexandra"]`; empty for a name the table does not know.
pub fn nickname_groups(name: &str) -> Vec<&'static str> {
    index()
        .get(name)
        .map(|groups| groups.iter().map(|&i| GROUPS[usize::from(i)].0).collect())
        .unwrap_or_default()
}

/// Whether two different normalized given names are nicknames of each other: some group of the
/// table holds both. Equal names are not nicknames (they are exact), so this is false for them.
pub fn are_nicknames(a: &str, b: &str) -> bool {
    if a == b {
        return false;
    }
    let map = index();
    match (map.get(a), map.get(b)) {
        (Some(ga), Some(gb)) => ga.iter().any(|g| gb.contains(g)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_well_formed() {
        assert!(GROUPS.len() >= 100, "about a hundred canonical names");
        let mut canonicals = std::collections::HashSet::new();
        for (canonical, variants) in GROUPS {
            assert!(canonicals.insert(*canonical), "{canonical} listed twice");
            let mut seen = std::collections::HashSet::new();
            for name in std::iter::once(canonical).chain(variants.iter()) {
                assert!(
                    name.bytes().all(|b| b.is_ascii_lowercase()),
                    "{name} is lowercase ASCII, as normalize_name produces"
                );
                assert!(seen.insert(*name), "{name} twice in {canonical}");
            }
        }
    }

    #[test]
    fn relation_is_symmetric_and_shares_a_group() {
        assert!(are_nicknames("bill", "william"));
        assert!(are_nicknames("william", "bill"));
        assert!(are_nicknames("bill", "will"));
        assert!(are_nicknames("liz", "beth"));
        assert!(!are_nicknames("alexander", "alexandra"));
        assert!(!are_nicknames("john", "jonathan"));
        assert!(!are_nicknames("jon", "john"));
        assert!(!are_nicknames("bill", "bill"));
        assert!(!are_nicknames("zorro", "bill"));
        assert_eq!(
            nickname_groups("alex"),
            ["alexander", "alexandra", "alejandro", "aleksandr"]
        );
        assert!(nickname_groups("zorro").is_empty());
    }
}
