//! Who exists (SPEC §4): prefectures, CGC operators and their centers, police forces and their
//! units. Loaded from `policies/registry.toml` and validated as a whole, so that everything the
//! policy engine looks up here is known to be consistent.

pub mod codes;
pub mod error;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use self::codes::{MunicipalityCode, PrefectureCode};
use crate::text::is_identifier;
use error::PolicyError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefecture {
    pub code: PrefectureCode,
    pub name: String,
    /// The prefecture's own JIS X 0402 code (`140007` for Kanagawa).
    pub municipality: MunicipalityCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorKind {
    Prefecture,
    /// 指定都市
    DesignatedCity,
    /// 児童相談所設置市 (core cities, special wards)
    CgcCity,
}

impl OperatorKind {
    /// Cities must opt in to a prefecture's agreement; a prefecture's own cases need no consent.
    pub fn is_city(self) -> bool {
        !matches!(self, OperatorKind::Prefecture)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OperatorKind::Prefecture => "prefecture",
            OperatorKind::DesignatedCity => "designated_city",
            OperatorKind::CgcCity => "cgc_city",
        }
    }
}

/// A body that runs child guidance centers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// The jurisdiction code: `"14"` for a prefecture, the city's 6-digit code for a city.
    pub id: String,
    pub kind: OperatorKind,
    pub name: String,
    pub prefecture: PrefectureCode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Center {
    pub id: String,
    /// Its Japanese name, as officers read it (`神奈川県中央児童相談所`).
    pub name: String,
    /// The id of its operator.
    pub operator: String,
    /// The number an officer calls during office hours.
    pub phone: Option<String>,
    /// The number an officer calls at night and on holidays (夜間・休日).
    pub after_hours_phone: Option<String>,
}

/// The name of a municipality (or ward) code the registry uses, so that screens show
/// `横浜市中区` rather than `141046`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Municipality {
    pub code: MunicipalityCode,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Force {
    pub id: String,
    pub name: String,
    pub prefecture: PrefectureCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    Station,
    Hq,
}

/// A police station or a force's HQ: the recipients of case views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub id: String,
    pub name: String,
    /// The id of its force.
    pub force: String,
    pub kind: UnitKind,
    /// The municipalities (or wards) a station covers; empty for an HQ. A municipality may be
    /// split between stations, so several stations may list the same code.
    pub municipalities: Vec<MunicipalityCode>,
}

/// The validated registry. Every reference inside it resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    prefectures: BTreeMap<PrefectureCode, Prefecture>,
    operators: BTreeMap<String, Operator>,
    centers: BTreeMap<String, Center>,
    forces: BTreeMap<String, Force>,
    units: BTreeMap<String, Unit>,
    municipalities: BTreeMap<MunicipalityCode, Municipality>,
}

impl Registry {
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::io(path, &e))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and validates a registry document; `source` labels errors (usually the path).
    pub fn from_toml(text: &str, source: &str) -> Result<Self, PolicyError> {
        let raw: RawRegistry = toml::from_str(text).map_err(|e| PolicyError::toml(source, text, &e))?;
        Builder { text, source }.build(raw)
    }

    pub fn prefecture(&self, code: PrefectureCode) -> Option<&Prefecture> {
        self.prefectures.get(&code)
    }
    pub fn operator(&self, id: &str) -> Option<&Operator> {
        self.operators.get(id)
    }
    pub fn center(&self, id: &str) -> Option<&Center> {
        self.centers.get(id)
    }
    pub fn force(&self, id: &str) -> Option<&Force> {
        self.forces.get(id)
    }
    pub fn unit(&self, id: &str) -> Option<&Unit> {
        self.units.get(id)
    }

    pub fn operator_of_center(&self, center_id: &str) -> Option<&Operator> {
        self.center(center_id).and_then(|c| self.operator(&c.operator))
    }

    /// Whether the unit is a station whose area contains the municipality.
    pub fn covers(&self, unit_id: &str, municipality: MunicipalityCode) -> bool {
        self.unit(unit_id)
            .is_some_and(|u| u.municipalities.contains(&municipality))
    }

    /// The force's HQ unit (validation guarantees exactly one).
    pub fn hq_of(&self, force_id: &str) -> Option<&Unit> {
        self.units
            .values()
            .find(|u| u.force == force_id && u.kind == UnitKind::Hq)
    }

    /// The force of a prefecture (one per prefecture, SPEC §4).
    pub fn force_of_prefecture(&self, prefecture: PrefectureCode) -> Option<&Force> {
        self.forces.values().find(|f| f.prefecture == prefecture)
    }

    pub fn prefectures(&self) -> impl Iterator<Item = &Prefecture> {
        self.prefectures.values()
    }
    pub fn operators(&self) -> impl Iterator<Item = &Operator> {
        self.operators.values()
    }
    pub fn centers(&self) -> impl Iterator<Item = &Center> {
        self.centers.values()
    }
    pub fn forces(&self) -> impl Iterator<Item = &Force> {
        self.forces.values()
    }
    /// All units in id order.
    pub fn units(&self) -> impl Iterator<Item = &Unit> {
        self.units.values()
    }
    /// The named municipalities in code order.
    pub fn municipalities(&self) -> impl Iterator<Item = &Municipality> {
        self.municipalities.values()
    }
    pub fn municipality(&self, code: MunicipalityCode) -> Option<&Municipality> {
        self.municipalities.get(&code)
    }
}

// The file as written. Identifiers and codes keep their spans so that validation errors can
// point at the line.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    #[serde(default)]
    prefectures: Vec<RawPrefecture>,
    #[serde(default)]
    operators: Vec<RawOperator>,
    #[serde(default)]
    centers: Vec<RawCenter>,
    #[serde(default)]
    forces: Vec<RawForce>,
    #[serde(default)]
    units: Vec<RawUnit>,
    #[serde(default)]
    municipalities: Vec<RawMunicipality>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMunicipality {
    code: Spanned<String>,
    name: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrefecture {
    code: Spanned<String>,
    name: Spanned<String>,
    municipality: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperator {
    id: Spanned<String>,
    kind: OperatorKind,
    name: Spanned<String>,
    prefecture: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCenter {
    id: Spanned<String>,
    name: Spanned<String>,
    operator: Spanned<String>,
    #[serde(default)]
    phone: Option<Spanned<String>>,
    #[serde(default)]
    after_hours_phone: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForce {
    id: Spanned<String>,
    name: Spanned<String>,
    prefecture: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUnit {
    id: Spanned<String>,
    name: Spanned<String>,
    force: Spanned<String>,
    kind: UnitKind,
    #[serde(default)]
    municipalities: Vec<Spanned<String>>,
}

struct Builder<'a> {
    text: &'a str,
    source: &'a str,
}

impl Builder<'_> {
    fn err<T>(&self, at: &Spanned<T>, message: impl Into<String>) -> PolicyError {
        PolicyError::at(self.source, self.text, at.span(), message)
    }

    fn identifier(&self, id: &Spanned<String>, what: &str) -> Result<String, PolicyError> {
        if is_identifier(id.get_ref()) {
            Ok(id.get_ref().clone())
        } else {
            Err(self.err(
                id,
                format!("{what} id `{}` must match [A-Za-z0-9._-]{{1,64}}", id.get_ref()),
            ))
        }
    }

    fn name(&self, name: &Spanned<String>, what: &str) -> Result<String, PolicyError> {
        if name.get_ref().trim().is_empty() {
            Err(self.err(name, format!("{what} name must not be empty")))
        } else {
            Ok(name.get_ref().clone())
        }
    }

    /// A phone number as dialled in Japan: digits in groups separated by hyphens.
    fn phone(&self, phone: Option<&Spanned<String>>, what: &str) -> Result<Option<String>, PolicyError> {
        let Some(phone) = phone else { return Ok(None) };
        let p = phone.get_ref();
        let digits = p.chars().filter(char::is_ascii_digit).count();
        let well_formed = p.chars().all(|c| c.is_ascii_digit() || c == '-')
            && !p.starts_with('-')
            && !p.ends_with('-')
            && !p.contains("--");
        if well_formed && (3..=15).contains(&digits) {
            Ok(Some(p.clone()))
        } else {
            Err(self.err(
                phone,
                format!("{what} `{p}` must be digits in groups separated by hyphens (045-000-0000)"),
            ))
        }
    }

    fn prefecture_code(&self, s: &Spanned<String>) -> Result<PrefectureCode, PolicyError> {
        PrefectureCode::parse(s.get_ref()).map_err(|e| self.err(s, format!("prefecture code `{}`: {e}", s.get_ref())))
    }

    fn municipality_code(&self, s: &Spanned<String>) -> Result<MunicipalityCode, PolicyError> {
        MunicipalityCode::parse(s.get_ref())
            .map_err(|e| self.err(s, format!("municipality code `{}`: {e}", s.get_ref())))
    }

    fn build(&self, raw: RawRegistry) -> Result<Registry, PolicyError> {
        let mut prefectures = BTreeMap::new();
        for p in &raw.prefectures {
            let code = self.prefecture_code(&p.code)?;
            let municipality = self.municipality_code(&p.municipality)?;
            // A prefecture's own code is its two digits, "000", and the check digit.
            if !municipality.as_str().starts_with(&format!("{code}000")) {
                return Err(self.err(
                    &p.municipality,
                    format!("`{municipality}` is not the own code of prefecture {code}"),
                ));
            }
            let name = self.name(&p.name, "prefecture")?;
            if prefectures
                .insert(
                    code,
                    Prefecture {
                        code,
                        name,
                        municipality,
                    },
                )
                .is_some()
            {
                return Err(self.err(&p.code, format!("prefecture `{code}` is listed twice")));
            }
        }

        let mut operators = BTreeMap::new();
        for o in &raw.operators {
            let prefecture = self.prefecture_code(&o.prefecture)?;
            if !prefectures.contains_key(&prefecture) {
                return Err(self.err(
                    &o.prefecture,
                    format!("operator's prefecture `{prefecture}` is not in [[prefectures]]"),
                ));
            }
            let id = o.id.get_ref();
            if o.kind.is_city() {
                let city = self.municipality_code(&o.id)?;
                if city.prefecture() != prefecture || city.as_str().get(2..5) == Some("000") {
                    return Err(self.err(
                        &o.id,
                        format!("`{id}` is not the code of a city in prefecture {prefecture}"),
                    ));
                }
            } else if *id != prefecture.to_string() {
                return Err(self.err(
                    &o.id,
                    format!("a prefecture operator's id must be its prefecture code `{prefecture}`"),
                ));
            }
            let operator = Operator {
                id: id.clone(),
                kind: o.kind,
                name: self.name(&o.name, "operator")?,
                prefecture,
            };
            if operators.insert(id.clone(), operator).is_some() {
                return Err(self.err(&o.id, format!("operator `{id}` is listed twice")));
            }
        }

        let mut centers = BTreeMap::new();
        for c in &raw.centers {
            let id = self.identifier(&c.id, "center")?;
            let operator = c.operator.get_ref();
            if !operators.contains_key(operator) {
                return Err(self.err(
                    &c.operator,
                    format!("center `{id}`: operator `{operator}` is not in [[operators]]"),
                ));
            }
            let center = Center {
                id: id.clone(),
                name: self.name(&c.name, "center")?,
                operator: operator.clone(),
                phone: self.phone(c.phone.as_ref(), "phone")?,
                after_hours_phone: self.phone(c.after_hours_phone.as_ref(), "after_hours_phone")?,
            };
            if centers.insert(id.clone(), center).is_some() {
                return Err(self.err(&c.id, format!("center `{id}` is listed twice")));
            }
        }

        let mut forces = BTreeMap::new();
        for f in &raw.forces {
            let id = self.identifier(&f.id, "force")?;
            let prefecture = self.prefecture_code(&f.prefecture)?;
            if !prefectures.contains_key(&prefecture) {
                return Err(self.err(
                    &f.prefecture,
                    format!("force `{id}`: prefecture `{prefecture}` is not in [[prefectures]]"),
                ));
            }
            if let Some(other) = forces.values().find(|o: &&Force| o.prefecture == prefecture) {
                return Err(self.err(
                    &f.id,
                    format!("prefecture {prefecture} already has force `{}`", other.id),
                ));
            }
            let force = Force {
                id: id.clone(),
                name: self.name(&f.name, "force")?,
                prefecture,
            };
            if forces.insert(id.clone(), force).is_some() {
                return Err(self.err(&f.id, format!("force `{id}` is listed twice")));
            }
        }

        let mut units = BTreeMap::new();
        for u in &raw.units {
            let id = self.identifier(&u.id, "unit")?;
            let force_id = u.force.get_ref();
            let Some(force) = forces.get(force_id) else {
                return Err(self.err(
                    &u.force,
                    format!("unit `{id}`: force `{force_id}` is not in [[forces]]"),
                ));
            };
            let mut municipalities = Vec::with_capacity(u.municipalities.len());
            for m in &u.municipalities {
                let code = self.municipality_code(m)?;
                if code.prefecture() != force.prefecture {
                    return Err(self.err(
                        m,
                        format!("unit `{id}`: `{code}` is outside prefecture {}", force.prefecture),
                    ));
                }
                if municipalities.contains(&code) {
                    return Err(self.err(m, format!("unit `{id}`: `{code}` is listed twice")));
                }
                municipalities.push(code);
            }
            match u.kind {
                UnitKind::Station if municipalities.is_empty() => {
                    return Err(self.err(&u.id, format!("station `{id}` must cover at least one municipality")));
                }
                UnitKind::Hq if !municipalities.is_empty() => {
                    return Err(self.err(
                        &u.id,
                        format!("HQ unit `{id}` sees the whole prefecture; list no municipalities"),
                    ));
                }
                _ => {}
            }
            let unit = Unit {
                id: id.clone(),
                name: self.name(&u.name, "unit")?,
                force: force_id.clone(),
                kind: u.kind,
                municipalities,
            };
            if units.insert(id.clone(), unit).is_some() {
                return Err(self.err(&u.id, format!("unit `{id}` is listed twice")));
            }
        }

        for f in &raw.forces {
            let id = f.id.get_ref();
            let hqs = units
                .values()
                .filter(|u: &&Unit| u.force == *id && u.kind == UnitKind::Hq)
                .count();
            if hqs != 1 {
                return Err(self.err(
                    &f.id,
                    format!("force `{id}` must have exactly one HQ unit, found {hqs}"),
                ));
            }
        }

        let mut municipalities = BTreeMap::new();
        for m in &raw.municipalities {
            let code = self.municipality_code(&m.code)?;
            let name = self.name(&m.name, "municipality")?;
            if municipalities.insert(code, Municipality { code, name }).is_some() {
                return Err(self.err(&m.code, format!("municipality `{code}` is listed twice")));
            }
        }

        Ok(Registry {
            prefectures,
            operators,
            centers,
            forces,
            units,
            municipalities,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/registry.toml");

    fn demo_text() -> String {
        std::fs::read_to_string(DEMO).unwrap()
    }

    fn code(s: &str) -> MunicipalityCode {
        MunicipalityCode::parse(s).unwrap()
    }

    #[test]
    fn demo_registry_resolves_the_spec_names() {
        let r = Registry::load(Path::new(DEMO)).unwrap();
        let cases = [
            ("kanagawa-central", "14", OperatorKind::Prefecture),
            ("yokohama-central", "141003", OperatorKind::DesignatedCity),
            ("kawasaki-central", "141305", OperatorKind::DesignatedCity),
            ("sagamihara", "141500", OperatorKind::DesignatedCity),
            ("yokosuka", "142018", OperatorKind::CgcCity),
        ];
        for (center, operator, kind) in cases {
            let o = r.operator_of_center(center).unwrap();
            assert_eq!((o.id.as_str(), o.kind), (operator, kind), "{center}");
        }
        assert_eq!(r.operator("14").unwrap().name, "神奈川県");
        assert_eq!(r.hq_of("kanagawa-pp").unwrap().id, "hq");
        assert!(r.covers("kagacho", code("141046")));
        assert!(r.covers("tsurumi", code("141011")));
        assert!(r.covers("atsugi", code("144011")));
        assert!(r.covers("atsugi", code("144029")));
        assert!(!r.covers("kagacho", code("141011")));
        assert!(!r.covers("hq", code("141046")));
        assert!(!r.covers("no-such-unit", code("141046")));
        let stations: Vec<_> = r
            .units()
            .filter(|u| u.kind == UnitKind::Station)
            .map(|u| u.id.as_str())
            .collect();
        assert_eq!(
            stations,
            [
                "atsugi",
                "kagacho",
                "kawasaki",
                "sagamihara-minami",
                "tsurumi",
                "yokosuka"
            ]
        );
    }

    #[test]
    fn demo_registry_names_every_code_it_uses_and_every_center_has_both_numbers() {
        let r = Registry::load(Path::new(DEMO)).unwrap();
        let mut used: Vec<MunicipalityCode> = r.units().flat_map(|u| u.municipalities.clone()).collect();
        used.extend(r.prefectures().map(|p| p.municipality));
        used.extend(r.operators().filter_map(|o| MunicipalityCode::parse(&o.id).ok()));
        for code in used {
            assert!(r.municipality(code).is_some(), "{code} has no name");
        }
        assert_eq!(r.municipality(code("141046")).unwrap().name, "横浜市中区");
        assert_eq!(r.municipality(code("144011")).unwrap().name, "愛甲郡愛川町");
        for c in r.centers() {
            assert!(c.phone.is_some() && c.after_hours_phone.is_some(), "{}", c.id);
            assert_ne!(c.phone, c.after_hours_phone, "{}", c.id);
        }
        let central = r.center("kanagawa-central").unwrap();
        assert_eq!(central.name, "神奈川県中央児童相談所");
        assert_eq!(central.after_hours_phone.as_deref(), Some("046-000-1190"));
        assert_eq!(r.unit("kagacho").unwrap().name, "加賀町警察署");
    }

    #[test]
    fn malformed_phone_and_repeated_municipality_are_refused_with_line() {
        let text = demo_text().replacen("phone = \"046-000-1100\"", "phone = \"046 000 1100\"", 1);
        let line = text.lines().position(|l| l.contains("046 000 1100")).unwrap() + 1;
        let e = Registry::from_toml(&text, "reg.toml").unwrap_err();
        assert_eq!(e.line, Some(line), "{e}");
        assert!(e.message.contains("hyphens"), "{e}");
        let text = format!(
            "{}\n[[municipalities]]\ncode = \"141046\"\nname = \"中区\"\n",
            demo_text()
        );
        let e = Registry::from_toml(&text, "reg.toml").unwrap_err();
        assert!(e.message.contains("`141046` is listed twice"), "{e}");
        let text = format!(
            "{}\n[[municipalities]]\ncode = \"141047\"\nname = \"中区\"\n",
            demo_text()
        );
        let e = Registry::from_toml(&text, "reg.toml").unwrap_err();
        assert!(e.message.contains("check digit"), "{e}");
    }

    #[test]
    fn bad_check_digit_is_refused_with_file_and_line() {
        let text = demo_text().replacen("\"141046\"", "\"141047\"", 1);
        let line = text.lines().position(|l| l.contains("\"141047\"")).unwrap() + 1;
        let e = Registry::from_toml(&text, "policies/registry.toml").unwrap_err();
        assert_eq!(e.line, Some(line));
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("policies/registry.toml:{line}: ")),
            "{shown}"
        );
        assert!(shown.contains("141047") && shown.contains("check digit"), "{shown}");
    }

    #[test]
    fn unknown_key_is_refused_with_file_and_line() {
        let text = demo_text().replacen("name = \"加賀町警察署\"", "name = \"加賀町警察署\"\nfax = \"045\"", 1);
        let line = text.lines().position(|l| l.starts_with("fax")).unwrap() + 1;
        let e = Registry::from_toml(&text, "reg.toml").unwrap_err();
        assert_eq!(e.line, Some(line), "{e}");
        assert!(e.to_string().starts_with(&format!("reg.toml:{line}: ")), "{e}");
        assert!(e.message.contains("fax"), "{e}");
    }

    fn minimal(extra: &str) -> String {
        format!(
            r#"
[[prefectures]]
code = "14"
name = "神奈川県"
municipality = "140007"

[[operators]]
id = "14"
kind = "prefecture"
name = "神奈川県"
prefecture = "14"

[[forces]]
id = "kanagawa-pp"
name = "神奈川県警察"
prefecture = "14"

[[units]]
id = "hq"
name = "神奈川県警察本部"
force = "kanagawa-pp"
kind = "hq"
{extra}"#
        )
    }

    fn refused(extra: &str) -> PolicyError {
        Registry::from_toml(&minimal(extra), "r.toml").unwrap_err()
    }

    #[test]
    fn minimal_registry_loads() {
        assert!(Registry::from_toml(&minimal(""), "r.toml").is_ok());
    }

    #[test]
    fn dangling_references_are_refused() {
        let e = refused("[[centers]]\nid = \"c\"\nname = \"児相\"\noperator = \"141003\"\n");
        assert!(e.message.contains("operator `141003`"), "{e}");
        let e = refused(
            "[[units]]\nid = \"s\"\nname = \"署\"\nforce = \"tokyo-mpd\"\nkind = \"station\"\nmunicipalities = [\"141046\"]\n",
        );
        assert!(e.message.contains("force `tokyo-mpd`"), "{e}");
        let e = refused(
            "[[operators]]\nid = \"141003\"\nkind = \"designated_city\"\nname = \"横浜市\"\nprefecture = \"13\"\n",
        );
        assert!(e.message.contains("prefecture `13`"), "{e}");
    }

    #[test]
    fn each_force_needs_exactly_one_hq() {
        let e = refused("[[units]]\nid = \"hq2\"\nname = \"本部2\"\nforce = \"kanagawa-pp\"\nkind = \"hq\"\n");
        assert!(e.message.contains("exactly one HQ unit, found 2"), "{e}");
        let text = minimal("").replace("kind = \"hq\"", "kind = \"station\"\nmunicipalities = [\"141046\"]");
        let e = Registry::from_toml(&text, "r.toml").unwrap_err();
        assert!(e.message.contains("found 0"), "{e}");
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let e = refused(
            "[[units]]\nid = \"hq\"\nname = \"本部\"\nforce = \"kanagawa-pp\"\nkind = \"station\"\nmunicipalities = [\"141046\"]\n",
        );
        assert!(e.message.contains("unit `hq` is listed twice"), "{e}");
    }

    #[test]
    fn operator_ids_follow_their_kind() {
        let e =
            refused("[[operators]]\nid = \"131016\"\nkind = \"cgc_city\"\nname = \"千代田区\"\nprefecture = \"14\"\n");
        assert!(e.message.contains("not the code of a city in prefecture 14"), "{e}");
        let e =
            refused("[[operators]]\nid = \"140007\"\nkind = \"designated_city\"\nname = \"x\"\nprefecture = \"14\"\n");
        assert!(e.message.contains("not the code of a city"), "{e}");
    }

    #[test]
    fn station_outside_its_prefecture_is_refused() {
        let e = refused(
            "[[units]]\nid = \"s\"\nname = \"署\"\nforce = \"kanagawa-pp\"\nkind = \"station\"\nmunicipalities = [\"131016\"]\n",
        );
        assert!(e.message.contains("outside prefecture 14"), "{e}");
    }
}
