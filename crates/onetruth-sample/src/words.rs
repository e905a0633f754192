//! Word lists. All names are invented combinations; companies and domains are fictional.

/// Given names, with the nickname people also go by (or `None`).
pub const GIVEN: &[(&str, Option<&str>)] = &[
    ("Robert", Some("Bob")),
    ("William", Some("Bill")),
    ("Elizabeth", Some("Liz")),
    ("Katherine", Some("Kate")),
    ("Michael", Some("Mike")),
    ("James", Some("Jim")),
    ("Jennifer", Some("Jen")),
    ("Christopher", Some("Chris")),
    ("Margaret", Some("Peggy")),
    ("Daniel", Some("Dan")),
    ("Patricia", Some("Pat")),
    ("Thomas", Some("Tom")),
    ("Alexander", Some("Alex")),
    ("Samantha", Some("Sam")),
    ("Jonathan", Some("Jon")),
    ("Rebecca", Some("Becky")),
    ("Nicholas", Some("Nick")),
    ("Victoria", Some("Tori")),
    ("Benjamin", Some("Ben")),
    ("Abigail", Some("Abby")),
    ("Maria", None),
    ("Wei", None),
    ("Priya", None),
    ("Aisha", None),
    ("Diego", None),
    ("Mei", None),
    ("Hiroshi", None),
    ("Fatima", None),
    ("Olga", None),
    ("Kwame", None),
    ("Sofia", None),
    ("Lucas", None),
    ("Amara", None),
    ("Noah", None),
    ("Zara", None),
    ("Ethan", None),
    ("Chloe", None),
    ("Mateo", None),
    ("Leila", None),
    ("Omar", None),
    ("Ingrid", None),
    ("Tariq", None),
    ("Yuki", None),
    ("Anika", None),
    ("Rafael", None),
    ("Nadia", None),
    ("Elena", None),
    ("Marcus", None),
    ("Grace", None),
    ("Hannah", None),
    ("Isaac", None),
    ("Jasmine", None),
    ("Kofi", None),
    ("Luis", None),
    ("Naomi", None),
    ("Oscar", None),
    ("Ravi", None),
    ("Sienna", None),
    ("Tobias", None),
    ("José", None),
];

pub const FAMILY: &[&str] = &[
    "Garcia",
    "Nguyen",
    "Okafor",
    "Patel",
    "Kowalski",
    "Johansson",
    "Haddad",
    "Tanaka",
    "Rossi",
    "Müller",
    "Muñoz",
    "O'Brien",
    "Smith-Jones",
    "Lefèvre",
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Martinez",
    "Lopez",
    "Wilson",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Walker",
    "Hall",
    "Young",
    "King",
    "Wright",
    "Scott",
    "Green",
    "Baker",
    "Adams",
    "Nelson",
    "Hill",
    "Campbell",
    "Mitchell",
    "Roberts",
    "Carter",
    "Evans",
    "Turner",
    "Chen",
    "Kim",
    "Singh",
    "Cohen",
    "Schmidt",
    "Dubois",
    "Ivanova",
    "Mensah",
    "Fernandes",
    "Novak",
    "Larsen",
];

/// (city, area code, postcodes)
pub const CITIES: &[(&str, &str, &[&str])] = &[
    ("San Francisco", "415", &["94103", "94110", "94117"]),
    ("New York", "212", &["10001", "10011", "10027"]),
    ("Boston", "617", &["02108", "02116", "02130"]),
    ("Chicago", "312", &["60601", "60607", "60614"]),
    ("Seattle", "206", &["98101", "98103", "98122"]),
    ("Denver", "303", &["80202", "80205", "80218"]),
    ("Austin", "512", &["78701", "78704", "78751"]),
    ("Portland", "503", &["97204", "97209", "97214"]),
];

pub const STREETS: &[&str] = &[
    "Oak",
    "Maple",
    "Cedar",
    "Pine",
    "Elm",
    "Washington",
    "Lake",
    "Hill",
    "Park",
    "Sunset",
    "Mission",
    "Valencia",
    "Harbor",
    "Spring",
    "Church",
    "Market",
    "Union",
    "Grand",
    "Ridge",
    "Willow",
    "Juniper",
    "Chestnut",
    "Highland",
    "Riverside",
];

/// (abbreviation, spelled out)
pub const STREET_SUFFIXES: &[(&str, &str)] = &[
    ("St", "Street"),
    ("Ave", "Avenue"),
    ("Blvd", "Boulevard"),
    ("Rd", "Road"),
    ("Ln", "Lane"),
    ("Dr", "Drive"),
    ("Ct", "Court"),
];

/// (company, email domain)
pub const COMPANIES: &[(&str, &str)] = &[
    ("Harborview Analytics", "harborview.example"),
    ("Bluefin Logistics", "bluefin-logistics.example"),
    ("Cedar & Pine Design", "cedarpine.example"),
    ("Lumen Health", "lumenhealth.example"),
    ("Quarry Street Bakery", "quarrystreet.example"),
    ("Redwood Legal LLP", "redwoodlegal.example"),
    ("Tidewater Marine", "tidewater.example"),
    ("Summit Ridge Outfitters", "summitridge.example"),
    ("Copperleaf Software", "copperleaf.example"),
    ("Marigold Florals", "marigold.example"),
    ("Ironclad Security", "ironclad.example"),
    ("Brightwave Media", "brightwave.example"),
    ("Oakhurst Dental", "oakhurstdental.example"),
    ("Silverline Freight", "silverline.example"),
    ("Meadowlark Coffee", "meadowlark.example"),
    ("Granite Peak Capital", "granitepeak.example"),
    ("Lantern Labs", "lanternlabs.example"),
    ("Willow Creek Farms", "willowcreek.example"),
    ("Parallax Robotics", "parallax.example"),
    ("Seabright Hotels", "seabright.example"),
];

pub const PERSONAL_DOMAINS: &[&str] = &["example.com", "example.org", "example.net"];

pub const PLANS: &[&str] = &["starter", "pro", "business", "enterprise"];

pub const SUBJECTS: &[&str] = &[
    "Can't log in",
    "Password reset email never arrives",
    "Question about my invoice",
    "Charged twice this month",
    "Refund request",
    "Update billing address",
    "Cancel my subscription",
    "Upgrade to annual plan",
    "Feature request: CSV export",
    "App crashes on startup",
    "Sync is stuck, please help",
    "How do I add a team member?",
    "Change the email on my account",
    "Card declined, but it works elsewhere",
    "Where is my receipt?",
    "Data missing after update",
];

pub const TICKET_STATUSES: &[&str] = &["new", "open", "pending", "solved", "closed"];

pub const AGENTS: &[&str] = &[
    "Dana Whitfield",
    "Marco Bellini",
    "Priscilla Okoro",
    "Sven Lindqvist",
    "Tamsin Hale",
    "Jorge Alvarado",
];

/// Lowercase ASCII for email local parts: accents folded, apostrophes and spaces dropped.
pub fn slug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = match c {
            'à' | 'á' | 'â' | 'ä' | 'À' | 'Á' => 'a',
            'è' | 'é' | 'ê' | 'ë' | 'É' => 'e',
            'ì' | 'í' | 'î' | 'ï' => 'i',
            'ò' | 'ó' | 'ô' | 'ö' | 'Ö' => 'o',
            'ù' | 'ú' | 'û' | 'ü' | 'Ü' => 'u',
            'ñ' => 'n',
            c => c.to_ascii_lowercase(),
        };
        if c.is_ascii_alphanumeric() || c == '-' {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs_are_ascii() {
        assert_eq!(super::slug("O'Brien"), "obrien");
        assert_eq!(super::slug("Müller"), "muller");
        assert_eq!(super::slug("José"), "jose");
        assert_eq!(super::slug("Smith-Jones"), "smith-jones");
    }
}
