//! Deterministic synthetic cases (SPEC §5) for the demo's simulated CGC feed, tests and
//! benchmarks. Every name, address and story here is invented; none describes a real child.
//!
//! The generator carries its own splitmix64 so the same seed gives the same cases on every
//! platform and across dependency upgrades, which reproducible benchmarks and tests rely on.

use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;
use time::macros::{date, offset};
use time::{Date, Duration, OffsetDateTime, UtcOffset};

use crate::cases::validate::MAX_VERSION;

/// Japanese centers write their records in local time.
const JST: UtcOffset = offset!(+9);
/// Keeps `assessment.progress` far below the 10,000-character limit however often a case is
/// bumped.
const MAX_PROGRESS_LINES: usize = 30;
const MAX_PROGRESS_CHARS: usize = 8_000;

/// (kanji, katakana reading)
type Name = (&'static str, &'static str);

const FAMILY_NAMES: &[Name] = &[
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("高橋", "タカハシ"),
    ("田中", "タナカ"),
    ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"),
    ("山本", "ヤマモト"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
    ("吉田", "ヨシダ"),
    ("山田", "ヤマダ"),
    ("佐々木", "ササキ"),
    ("山口", "ヤマグチ"),
    ("松本", "マツモト"),
    ("井上", "イノウエ"),
    ("木村", "キムラ"),
    ("林", "ハヤシ"),
    ("斎藤", "サイトウ"),
    ("清水", "シミズ"),
    ("山崎", "ヤマザキ"),
    ("森", "モリ"),
    ("池田", "イケダ"),
    ("橋本", "ハシモト"),
    ("阿部", "アベ"),
    ("石川", "イシカワ"),
    ("山下", "ヤマシタ"),
    ("中島", "ナカジマ"),
    ("石井", "イシイ"),
    ("小川", "オガワ"),
    ("前田", "マエダ"),
    ("岡田", "オカダ"),
    ("長谷川", "ハセガワ"),
    ("藤田", "フジタ"),
    ("後藤", "ゴトウ"),
    ("近藤", "コンドウ"),
    ("村上", "ムラカミ"),
    ("遠藤", "エンドウ"),
    ("青木", "アオキ"),
    ("坂本", "サカモト"),
];

const BOYS: &[Name] = &[
    ("蓮", "レン"),
    ("陽翔", "ハルト"),
    ("湊", "ミナト"),
    ("蒼", "アオイ"),
    ("樹", "イツキ"),
    ("大翔", "ヒロト"),
    ("悠真", "ユウマ"),
    ("陽太", "ヨウタ"),
    ("颯太", "ソウタ"),
    ("律", "リツ"),
    ("朝陽", "アサヒ"),
    ("悠人", "ユウト"),
    ("大和", "ヤマト"),
    ("奏太", "カナタ"),
    ("翔太", "ショウタ"),
    ("拓海", "タクミ"),
    ("健太", "ケンタ"),
    ("蒼空", "ソラ"),
    ("海斗", "カイト"),
    ("琉生", "ルイ"),
];

const GIRLS: &[Name] = &[
    ("陽葵", "ヒマリ"),
    ("凛", "リン"),
    ("結菜", "ユイナ"),
    ("葵", "アオイ"),
    ("紬", "ツムギ"),
    ("芽依", "メイ"),
    ("結衣", "ユイ"),
    ("さくら", "サクラ"),
    ("莉子", "リコ"),
    ("美咲", "ミサキ"),
    ("杏", "アン"),
    ("心春", "コハル"),
    ("花", "ハナ"),
    ("澪", "ミオ"),
    ("彩花", "アヤカ"),
    ("美羽", "ミウ"),
    ("愛莉", "アイリ"),
    ("七海", "ナナミ"),
    ("結愛", "ユア"),
    ("心愛", "ココア"),
];

const WOMEN: &[Name] = &[
    ("美香", "ミカ"),
    ("由美", "ユミ"),
    ("真由美", "マユミ"),
    ("恵", "メグミ"),
    ("麻衣", "マイ"),
    ("彩", "アヤ"),
    ("千尋", "チヒロ"),
    ("愛", "アイ"),
    ("沙織", "サオリ"),
    ("智子", "トモコ"),
    ("裕子", "ユウコ"),
    ("明美", "アケミ"),
    ("奈々", "ナナ"),
    ("香織", "カオリ"),
    ("早紀", "サキ"),
];

const MEN: &[Name] = &[
    ("健一", "ケンイチ"),
    ("大輔", "ダイスケ"),
    ("拓也", "タクヤ"),
    ("翔", "ショウ"),
    ("直樹", "ナオキ"),
    ("誠", "マコト"),
    ("達也", "タツヤ"),
    ("和也", "カズヤ"),
    ("剛", "ツヨシ"),
    ("雄一", "ユウイチ"),
    ("亮", "リョウ"),
    ("浩二", "コウジ"),
    ("隆", "タカシ"),
    ("慎也", "シンヤ"),
    ("祐介", "ユウスケ"),
];

const GRANDMOTHERS: &[Name] = &[
    ("幸子", "サチコ"),
    ("和子", "カズコ"),
    ("洋子", "ヨウコ"),
    ("節子", "セツコ"),
    ("京子", "キョウコ"),
];

const EMPLOYERS: &[&str] = &[
    "有限会社港南運輸",
    "スーパーマーケット（パート）",
    "株式会社みなと建設",
    "居酒屋（アルバイト）",
    "介護施設（夜勤）",
    "自営業（内装業）",
    "派遣社員（倉庫作業）",
    "コンビニエンスストア（アルバイト）",
    "株式会社湘南物流",
    "スナック（夜間）",
];

/// The demo municipalities (SPEC §10) and some of their towns.
const TOWNS: &[(&str, &str, &[&str])] = &[
    ("141046", "横浜市中区", &["山下町", "本町", "山手町", "元町", "新山下"]),
    (
        "141011",
        "横浜市鶴見区",
        &["鶴見中央", "豊岡町", "生麦", "潮田町", "下末吉"],
    ),
    ("141313", "川崎市川崎区", &["砂子", "宮前町", "大師町", "藤崎", "渡田"]),
    (
        "141534",
        "相模原市南区",
        &["相模大野", "上鶴間本町", "東林間", "相南", "古淵"],
    ),
    (
        "142018",
        "横須賀市",
        &["本町", "汐入町", "久里浜", "追浜町", "衣笠栄町"],
    ),
    ("142123", "厚木市", &["中町", "旭町", "愛甲", "妻田東", "森の里"]),
];
const GENERIC_TOWNS: &[&str] = &["中央", "本町", "栄町", "緑町", "旭町"];
const BUILDINGS: &[&str] = &["コーポ", "ハイツ", "メゾン", "レジデンス", "荘"];

/// Desk phone area codes of the demo centers; anything else gets Yokohama's.
const AREA_CODES: &[(&str, &str)] = &[
    ("yokohama-central", "045"),
    ("kawasaki-central", "044"),
    ("sagamihara", "042"),
    ("yokosuka", "046"),
    ("kanagawa-central", "046"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Family {
    #[default]
    SingleMother,
    BothParents,
    Stepfather,
    MotherAndPartner,
    SingleFather,
    Grandmother,
}

/// Weights in percent; single-mother households are the most frequent in CGC caseloads.
const FAMILIES: &[(Family, u64)] = &[
    (Family::SingleMother, 34),
    (Family::BothParents, 30),
    (Family::Stepfather, 12),
    (Family::MotherAndPartner, 10),
    (Family::SingleFather, 8),
    (Family::Grandmother, 6),
];

const HOUSEHOLD_TEXT: &[(Family, &[&str])] = &[
    (
        Family::SingleMother,
        &[
            "母子家庭。母は夜間就労。",
            "母子家庭。母と本児、妹の3人世帯。母は昼夜掛け持ちで就労。",
            "母子家庭。離婚後、母の実家から転居してきた。近隣に親族なし。",
            "母子家庭。母は精神科通院中で、家事が滞りがち。",
        ],
    ),
    (
        Family::BothParents,
        &[
            "実父母と本児、弟の4人世帯。",
            "実父母と本児の3人世帯。父は長時間労働で帰宅が遅い。",
            "実父母と本児、きょうだい3人の6人世帯。住居が手狭。",
            "実父母と本児の3人世帯。父母ともに外国籍で、日本語での意思疎通に一部支援が必要。",
        ],
    ),
    (
        Family::Stepfather,
        &[
            "母の再婚により継父と同居。継父との関係が不安定。",
            "母、継父、本児、異父弟の4人世帯。継父は本児に厳しく接している。",
            "昨年母が再婚し、継父宅に転居。転居後に学校を転校。",
        ],
    ),
    (
        Family::MotherAndPartner,
        &[
            "母と母の交際相手（内縁）と同居。",
            "母、母の交際相手、本児の3人世帯。交際相手は半年前から同居。",
            "母の交際相手が頻繁に出入りしている。同居の有無は不明確。",
        ],
    ),
    (
        Family::SingleFather,
        &[
            "父子家庭。父は長距離運転手で不在がち。",
            "父子家庭。父と本児の2人世帯。父方祖母が時々支援。",
            "父子家庭。母は本児が2歳の時に家を出て、現在所在不明。",
        ],
    ),
    (
        Family::Grandmother,
        &[
            "祖母が養育。実母は所在不明。",
            "母方祖母と本児の2人世帯。祖母は高齢で持病あり。",
            "父母の離婚後、父方祖母宅で生活。父は別居。",
        ],
    ),
];

const DV_HOUSEHOLD: &[&str] = &[
    "父から母への暴力があり、本児がその場面を目撃している。",
    "母は元夫からのDVにより避難歴あり。",
    "同居男性から母への暴言・暴力が続いている。",
];

const CARE_INFANT: &[&str] = &[
    "未就園。日中は母が養育。",
    "保育所に在籍。欠席が目立つ。",
    "認可外保育施設を利用していたが、保育料滞納により退園。",
    "乳幼児健診（1歳6か月児）未受診。",
];
const CARE_PRESCHOOL: &[&str] = &[
    "幼稚園に在籍。登園は不規則。",
    "保育所に在籍。お迎えが閉園時間を過ぎることが多い。",
    "未就園。集団生活の経験なし。",
    "認定こども園に在籍。",
];
const CARE_ELEMENTARY: &[&str] = &[
    "市立小学校{grade}年生。",
    "市立小学校{grade}年生。月の半分以上欠席している。",
    "市立小学校{grade}年生。放課後は学童保育を利用。",
    "市立小学校{grade}年生。給食以外の食事が不十分な様子と担任から報告。",
];
const CARE_JUNIOR_HIGH: &[&str] = &[
    "市立中学校{grade}年生。",
    "市立中学校{grade}年生。不登校傾向。",
    "市立中学校{grade}年生。部活動に参加しているが、最近は休みがち。",
];
const CARE_HIGH: &[&str] = &[
    "県立高校に在籍。",
    "高校中退。現在は無職。",
    "通信制高校に在籍。アルバイトをしている。",
];

const UPBRINGING: &[&str] = &[
    "食事が十分に与えられていない様子。衣服の汚れが目立つ。",
    "夜間に子どもだけで過ごすことが多い。",
    "母は育児に疲弊しており、怒鳴ることが多い。",
    "しつけと称して叩くことがあると父が認めている。",
    "入浴が数日おきで、身体の清潔が保たれていない。",
    "きょうだいの世話を本児が担っている。",
    "保護者が本児の通院・服薬を管理できていない。",
    "本児の前で夫婦喧嘩が繰り返されている。",
];

const WELFARE: &[&str] = &[
    "生活保護受給中。",
    "児童扶養手当受給。",
    "利用なし。",
    "要保護児童対策地域協議会の登録ケース。",
    "養育支援訪問事業を利用していたが中断。",
    "ショートステイを過去に2回利用。",
    "障害児通所支援（放課後等デイサービス）を利用。",
];

const FINDINGS_PHYSICAL: &[&str] = &[
    "本児の左上腕に複数のあざを確認。本児は「たたかれた」と話す。",
    "顔面に打撲痕。保護者は「転んだ」と説明するが、受傷機転と合わない。",
    "背部に線状の痕を確認。医療機関受診済み。",
];
const FINDINGS_NEGLECT: &[&str] = &[
    "家庭訪問時、室内にごみが散乱し、食品が腐敗していた。",
    "身長・体重が同年齢の標準を大きく下回る。",
    "虫歯が多数あり、未治療のまま放置されている。",
];
const FINDINGS_SEXUAL: &[&str] = &["本児が学校の養護教諭に被害を打ち明けた。司法面接を調整中。"];
const FINDINGS_PSYCHOLOGICAL: &[&str] = &[
    "面接時、本児は表情が乏しく、大人の顔色をうかがう様子が見られた。",
    "「お前なんか生まれてこなければよかった」と言われていると本児が話す。",
    "きょうだいと比べて本児だけが食事や外出から外されている。",
];

const PLANS: &[&str] = &[
    "週1回の家庭訪問により見守りを継続する。",
    "学校・保育所と連携し、登校（登園）状況を毎日確認する。",
    "保護者への指導を継続し、養育支援訪問事業につなぐ。",
    "要保護児童対策地域協議会の個別ケース検討会議で支援方針を共有する。",
];
const PLAN_PROTECTION: &str = "一時保護を継続し、家庭環境の調整を行う。";
const PLAN_MISSING: &str = "警察と情報共有し、所在確認を急ぐ。";
const PLAN_DV: &str = "母子の安全確保のため、配偶者暴力相談支援センターと連携する。";

const PROGRESS_NOTES: &[&str] = &[
    "家庭訪問。本児の安全を目視で確認。",
    "学校から、本児は通常どおり登校しているとの報告。",
    "保護者と面接。指導内容を確認。",
    "関係機関と電話で情報共有。",
    "保護者に連絡がつかず、再度訪問予定。",
    "本児と個別に面接。落ち着いた様子。",
];

const SAFETY_SEEN: &str = "家庭訪問。本児の安全を目視で確認。";

const WORKER_TITLES: &[&str] = &["児童福祉司", "児童心理司", "児童福祉司（SV）"];

const STATUS_INTAKE: &str = "intake";
const STATUS_INVESTIGATING: &str = "investigating";
const STATUS_PROTECTION: &str = "temporary_protection";
const STATUS_IN_CARE: &str = "in_care";
const STATUS_RETURNED: &str = "returned_home";
const STATUS_CLOSED: &str = "closed";

/// A seeded source of synthetic cases.
#[derive(Debug, Clone)]
pub struct Synth {
    state: u64,
}

impl Synth {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// splitmix64 (Steele, Lea, Flood 2014).
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0), by multiply-shift rather than a biased modulo.
    fn below(&mut self, n: u64) -> u64 {
        let wide = u128::from(self.next_u64()) * u128::from(n);
        u64::try_from(wide >> 64).unwrap_or(0)
    }

    /// Uniform in `lo..=hi`; `lo` when the range is empty.
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        let Some(span) = hi.checked_sub(lo).and_then(|s| u64::try_from(s).ok()) else {
            return lo;
        };
        let offset = self.below(span.saturating_add(1));
        lo.saturating_add(i64::try_from(offset).unwrap_or(0))
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn pick<T: Copy + Default>(&mut self, items: &[T]) -> T {
        let i = usize::try_from(self.below(items.len() as u64)).unwrap_or(0);
        items.get(i).copied().unwrap_or_default()
    }

    fn weighted<T: Copy + Default>(&mut self, items: &[(T, u64)]) -> T {
        let total: u64 = items.iter().map(|(_, w)| w).sum();
        let mut roll = self.below(total);
        for (item, weight) in items {
            if roll < *weight {
                return *item;
            }
            roll -= weight;
        }
        T::default()
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + u8::try_from(self.below(10)).unwrap_or(0)))
            .collect()
    }

    /// A full SPEC §5 case that `parse_case` accepts, as the center `center_id` would push it
    /// at `now`.
    pub fn case(
        &mut self,
        center_id: &str,
        case_id: &str,
        municipality_code: &str,
        version: u64,
        now: OffsetDateTime,
    ) -> Value {
        let now = local(now);
        let family_name = self.pick(FAMILY_NAMES);
        let sex = match self.below(100) {
            0 => "unknown",
            n if n < 50 => "male",
            _ => "female",
        };
        let given = match sex {
            "male" => self.pick(BOYS),
            "female" => self.pick(GIRLS),
            _ => {
                if self.percent(50) {
                    self.pick(BOYS)
                } else {
                    self.pick(GIRLS)
                }
            }
        };
        let age_days = self.between(20, 17 * 365 + 300);
        let birth_date = now
            .date()
            .checked_sub(Duration::days(age_days))
            .unwrap_or(Date::MIN)
            .max(date!(1900 - 01 - 01));
        let age = age_days / 365;

        let family = self.weighted(FAMILIES);
        let guardians = self.guardians(family, family_name);
        let dv = self.percent(10);
        let missing = self.percent(5);

        let mut household = self.pick_text(HOUSEHOLD_TEXT, family).to_owned();
        if dv {
            household.push_str(self.pick(DV_HOUSEHOLD));
        }

        let (types, injury) = self.abuse(dv);
        let mut risk = match self.below(100) {
            n if n < 20 => "high",
            n if n < 65 => "medium",
            _ => "low",
        };
        if injury || types.contains(&"sexual") || missing {
            risk = "high";
        }

        // Between one hour and ten days ago: the feed must show fresh intakes as well as ones
        // past the 48-hour safety-confirmation deadline.
        let since_intake = self.between(60, 10 * 24 * 60);
        let intake_at = now.checked_sub(Duration::minutes(since_intake)).unwrap_or(now);
        let overdue = since_intake > 48 * 60;
        let mut safety_confirmed_at = if missing {
            None
        } else if self.percent(if overdue { 75 } else { 55 }) {
            let within = self.between(30, since_intake.min(72 * 60));
            intake_at.checked_add(Duration::minutes(within))
        } else {
            None
        };

        let status = if missing {
            STATUS_INVESTIGATING
        } else if since_intake < 24 * 60 {
            if self.percent(60) {
                STATUS_INTAKE
            } else {
                STATUS_INVESTIGATING
            }
        } else {
            self.weighted(&[
                (STATUS_INVESTIGATING, 45),
                (STATUS_PROTECTION, 25),
                (STATUS_IN_CARE, 10),
                (STATUS_RETURNED, 13),
                (STATUS_CLOSED, 7),
            ])
        };
        // A child in protection or care has been seen by definition.
        if matches!(
            status,
            STATUS_PROTECTION | STATUS_IN_CARE | STATUS_RETURNED | STATUS_CLOSED
        ) && safety_confirmed_at.is_none()
        {
            let within = self.between(30, since_intake.min(48 * 60));
            safety_confirmed_at = intake_at.checked_add(Duration::minutes(within));
        }
        if status == STATUS_CLOSED {
            risk = "low";
        } else if matches!(status, STATUS_PROTECTION | STATUS_IN_CARE) && risk == "low" {
            // Nobody is taken into protection on a low-risk assessment.
            risk = "medium";
        }

        let findings = self.findings(&types);
        let mut plan = String::from(self.pick(PLANS));
        if status == STATUS_PROTECTION {
            plan = format!("{PLAN_PROTECTION}{plan}");
        }
        if missing {
            plan = format!("{PLAN_MISSING}{plan}");
        }
        if dv {
            plan.push_str(PLAN_DV);
        }
        let progress = match safety_confirmed_at {
            Some(t) if self.percent(70) => Value::String(format!("{}　{}", day_label(t), SAFETY_SEEN)),
            _ => Value::Null,
        };

        json!({
            "case_id": case_id,
            "center_id": center_id,
            "version": version.clamp(1, MAX_VERSION),
            "updated_at": timestamp(now),
            "child": {
                "name": format!("{}　{}", family_name.0, given.0),
                "name_kana": format!("{}　{}", family_name.1, given.1),
                "sex": sex,
                "birth_date": birth_date.to_string(),
                "address": {
                    "municipality_code": municipality_code,
                    "text": self.address(municipality_code),
                },
            },
            "guardians": guardians,
            "household": household,
            "care_setting": self.care_setting(age),
            "upbringing": self.pick(UPBRINGING),
            "welfare_services": self.pick(WELFARE),
            "abuse": { "types": types, "injury": injury },
            "risk_level": risk,
            "status": status,
            "intake_at": timestamp(intake_at),
            "safety_confirmed_at": safety_confirmed_at.map(timestamp),
            "flags": { "dv": dv, "missing": missing },
            "assessment": {
                "findings": findings,
                "plan": plan,
                "progress": progress,
            },
            "center_contact": {
                "name": self.worker(),
                "phone": self.phone(center_id),
            },
        })
    }

    /// The next version of `case` as its center would push it at `now`: the child found or
    /// seen, the case moving on, the risk re-assessed, a line added to the progress notes.
    /// A value that is not a JSON object comes back unchanged.
    pub fn bump(&mut self, case: &Value, now: OffsetDateTime) -> Value {
        let now = local(now);
        let mut next = case.clone();
        let Some(obj) = next.as_object_mut() else {
            return next;
        };
        let version = obj.get("version").and_then(Value::as_u64).unwrap_or(0);
        obj.insert("version".into(), json!(version.saturating_add(1).clamp(1, MAX_VERSION)));
        obj.insert("updated_at".into(), json!(timestamp(now)));

        let mut notes: Vec<&str> = Vec::new();
        let mut missing = obj
            .get("flags")
            .and_then(|f| f.get("missing"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut confirmed = obj.get("safety_confirmed_at").is_some_and(Value::is_string);

        if !confirmed && self.percent(60) {
            obj.insert("safety_confirmed_at".into(), json!(timestamp(now)));
            confirmed = true;
            notes.push(if missing {
                "所在が判明。本児の安全を目視で確認。"
            } else {
                SAFETY_SEEN
            });
            missing = false;
        }

        let status = obj
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or(STATUS_INTAKE)
            .to_owned();
        // Now and then a child seen safe goes missing (行方不明): the terminals' alert. The next
        // updates may find the child again, which ends it.
        if confirmed && !missing && status != STATUS_CLOSED && self.percent(3) {
            missing = true;
            confirmed = false;
            obj.insert("safety_confirmed_at".into(), Value::Null);
            notes.push("本児の所在が不明となり、警察に行方不明者届を提出。");
        }
        let risk = obj
            .get("risk_level")
            .and_then(Value::as_str)
            .unwrap_or("medium")
            .to_owned();
        let mut new_status = status.as_str();
        if self.percent(50) {
            new_status = self.next_status(&status, &risk, confirmed && !missing);
        }
        if new_status != status {
            notes.push(match new_status {
                STATUS_INVESTIGATING => "調査を開始。関係機関に照会。",
                STATUS_PROTECTION => "本児を一時保護。",
                STATUS_IN_CARE => "児童養護施設への入所措置を決定。",
                STATUS_RETURNED => "一時保護を解除し家庭復帰。見守りを継続。",
                STATUS_CLOSED => "援助方針会議で終結を決定。",
                _ => "援助方針を見直し。",
            });
            obj.insert("status".into(), json!(new_status));
        }

        let new_risk = if new_status == STATUS_CLOSED {
            "low"
        } else if self.percent(25) {
            let up = self.percent(50);
            match (risk.as_str(), up) {
                ("low", true) | ("high", false) => "medium",
                ("medium" | "high", true) => "high",
                _ => "low",
            }
        } else {
            risk.as_str()
        };
        let new_risk = if matches!(new_status, STATUS_PROTECTION | STATUS_IN_CARE) && new_risk == "low" {
            "medium"
        } else {
            new_risk
        };
        if new_risk != risk {
            notes.push("リスクを再評価。");
            obj.insert("risk_level".into(), json!(new_risk));
        }

        if let Some(Value::Object(flags)) = obj.get_mut("flags") {
            flags.insert("missing".into(), json!(missing));
        }

        if notes.is_empty() {
            notes.push(self.pick(PROGRESS_NOTES));
        }
        let line = format!("{}　{}", day_label(now), notes.concat());
        append_progress(obj, &line);
        next
    }

    fn next_status(&mut self, status: &str, risk: &str, seen: bool) -> &'static str {
        match status {
            STATUS_INTAKE => STATUS_INVESTIGATING,
            STATUS_INVESTIGATING if seen => {
                let protect = if risk == "high" { 60 } else { 20 };
                if self.percent(protect) {
                    STATUS_PROTECTION
                } else if risk == "low" && self.percent(30) {
                    STATUS_CLOSED
                } else {
                    STATUS_INVESTIGATING
                }
            }
            STATUS_PROTECTION => match self.below(10) {
                0..=4 => STATUS_RETURNED,
                5..=7 => STATUS_IN_CARE,
                _ => STATUS_PROTECTION,
            },
            STATUS_IN_CARE => {
                if self.percent(20) {
                    STATUS_RETURNED
                } else {
                    STATUS_IN_CARE
                }
            }
            STATUS_RETURNED => match self.below(10) {
                0..=2 => STATUS_CLOSED,
                3 => STATUS_PROTECTION,
                _ => STATUS_RETURNED,
            },
            STATUS_CLOSED => STATUS_CLOSED,
            _ => STATUS_INVESTIGATING,
        }
    }

    fn guardians(&mut self, family: Family, family_name: Name) -> Value {
        let mut out = Vec::new();
        let mother = |s: &mut Self| s.guardian(family_name, WOMEN, "mother");
        match family {
            Family::SingleMother => out.push(mother(self)),
            Family::BothParents => {
                out.push(mother(self));
                out.push(self.guardian(family_name, MEN, "father"));
            }
            Family::Stepfather => {
                out.push(mother(self));
                out.push(self.guardian(family_name, MEN, "stepfather"));
            }
            Family::MotherAndPartner => {
                out.push(mother(self));
                // Not married to the mother, so a family name of his own.
                let other = self.pick(FAMILY_NAMES);
                out.push(self.guardian(other, MEN, "partner"));
            }
            Family::SingleFather => out.push(self.guardian(family_name, MEN, "father")),
            Family::Grandmother => {
                out.push(self.guardian(family_name, GRANDMOTHERS, "grandparent"));
            }
        }
        Value::Array(out)
    }

    fn guardian(&mut self, family_name: Name, given: &[Name], relationship: &str) -> Value {
        let given = self.pick(given);
        let employer = if relationship != "grandparent" && self.percent(70) {
            Value::String(self.pick(EMPLOYERS).to_owned())
        } else {
            Value::Null
        };
        let mut g = Map::new();
        g.insert("name".into(), json!(format!("{}　{}", family_name.0, given.0)));
        if self.percent(90) {
            g.insert("name_kana".into(), json!(format!("{}　{}", family_name.1, given.1)));
        }
        g.insert("relationship".into(), json!(relationship));
        g.insert("employer".into(), employer);
        Value::Object(g)
    }

    fn pick_text(&mut self, table: &[(Family, &[&'static str])], family: Family) -> &'static str {
        let texts = table.iter().find(|(f, _)| *f == family).map_or(&[][..], |(_, t)| *t);
        self.pick(texts)
    }

    fn abuse(&mut self, dv: bool) -> (Vec<&'static str>, bool) {
        let primary = self.weighted(&[("psychological", 45), ("physical", 27), ("neglect", 22), ("sexual", 6)]);
        let mut types = vec![primary];
        // Witnessing violence at home (面前DV) is psychological abuse.
        if dv && !types.contains(&"psychological") {
            types.push("psychological");
        }
        if self.percent(20) {
            let extra = self.pick(&["physical", "neglect", "psychological"]);
            if !types.contains(&extra) {
                types.push(extra);
            }
        }
        let injury = if types.contains(&"physical") {
            self.percent(40)
        } else {
            self.percent(3)
        };
        (types, injury)
    }

    fn findings(&mut self, types: &[&str]) -> String {
        types
            .iter()
            .map(|t| match *t {
                "physical" => self.pick(FINDINGS_PHYSICAL),
                "neglect" => self.pick(FINDINGS_NEGLECT),
                "sexual" => self.pick(FINDINGS_SEXUAL),
                _ => self.pick(FINDINGS_PSYCHOLOGICAL),
            })
            .collect()
    }

    fn care_setting(&mut self, age: i64) -> String {
        let (table, grade) = match age {
            0..=2 => (CARE_INFANT, 0),
            3..=5 => (CARE_PRESCHOOL, 0),
            6..=11 => (CARE_ELEMENTARY, age - 5),
            12..=14 => (CARE_JUNIOR_HIGH, age - 11),
            _ => (CARE_HIGH, 0),
        };
        self.pick(table).replace("{grade}", &grade.to_string())
    }

    fn address(&mut self, municipality_code: &str) -> String {
        let (city, towns) = TOWNS
            .iter()
            .find(|(code, _, _)| *code == municipality_code)
            .map_or(("", GENERIC_TOWNS), |(_, city, towns)| (*city, *towns));
        let town = self.pick(towns);
        let (a, b, c) = (self.between(1, 5), self.between(1, 30), self.between(1, 20));
        let mut text = format!("{city}{town}{a}-{b}-{c}");
        if self.percent(40) {
            let building = self.pick(BUILDINGS);
            let room = self.between(1, 4) * 100 + self.between(1, 8);
            let name = self.pick(FAMILY_NAMES).0;
            text.push_str(&format!(" {name}{building}{room}号室"));
        }
        text
    }

    fn worker(&mut self) -> String {
        let family = self.pick(FAMILY_NAMES).0;
        let given = if self.percent(50) {
            self.pick(WOMEN).0
        } else {
            self.pick(MEN).0
        };
        let title = self.pick(WORKER_TITLES);
        format!("{family}　{given}（{title}）")
    }

    fn phone(&mut self, center_id: &str) -> String {
        let area = AREA_CODES
            .iter()
            .find(|(c, _)| *c == center_id)
            .map_or("045", |(_, a)| *a);
        format!("{area}-{}-{}", self.digits(3), self.digits(4))
    }
}

fn local(t: OffsetDateTime) -> OffsetDateTime {
    t.checked_to_offset(JST).unwrap_or(t).truncate_to_second()
}

/// RFC 3339 in the center's local time. Only years outside 0000–9999 fail to format, and no
/// feed runs there; the empty string then makes the case fail validation visibly.
fn timestamp(t: OffsetDateTime) -> String {
    local(t).format(&Rfc3339).unwrap_or_default()
}

/// "3月5日", as caseworkers date their notes.
fn day_label(t: OffsetDateTime) -> String {
    let t = local(t);
    format!("{}月{}日", u8::from(t.month()), t.day())
}

fn append_progress(case: &mut Map<String, Value>, line: &str) {
    let assessment = case.entry("assessment").or_insert_with(|| Value::Object(Map::new()));
    if !assessment.is_object() {
        *assessment = Value::Object(Map::new());
    }
    let Value::Object(assessment) = assessment else {
        return;
    };
    let old = assessment.get("progress").and_then(Value::as_str).unwrap_or("");
    let mut lines: Vec<&str> = old.lines().filter(|l| !l.is_empty()).collect();
    lines.push(line);
    let skip = lines.len().saturating_sub(MAX_PROGRESS_LINES);
    let mut progress = lines.split_off(skip).join("\n");
    let chars = progress.chars().count();
    if chars > MAX_PROGRESS_CHARS {
        progress = progress.chars().skip(chars - MAX_PROGRESS_CHARS).collect();
    }
    assessment.insert("progress".into(), Value::String(progress));
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use crate::cases::record::{CaseRecord, Relationship, RiskLevel, Status};
    use crate::cases::validate::{is_kana_char, parse_case};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 +09:00);
    const CODES: &[&str] = &["141046", "141011", "141313", "141534", "142018", "142123", "141003"];
    const CENTERS: &[&str] = &[
        "yokohama-central",
        "kawasaki-central",
        "sagamihara",
        "yokosuka",
        "kanagawa-central",
    ];

    fn generate(seed: u64, n: usize) -> Vec<Value> {
        let mut s = Synth::new(seed);
        (0..n)
            .map(|i| {
                let center = CENTERS[i % CENTERS.len()];
                let code = CODES[i % CODES.len()];
                s.case(center, &format!("SYN-{i:05}"), code, 1 + (i as u64 % 3), NOW)
            })
            .collect()
    }

    fn parse(v: &Value) -> CaseRecord {
        parse_at(v, NOW)
    }

    /// Parses a case as the gateway would when it is pushed at `now`.
    fn parse_at(v: &Value, now: OffsetDateTime) -> CaseRecord {
        match parse_case(v, now) {
            Ok(r) => r,
            Err(e) => panic!("{e:?}\n{}", serde_json::to_string_pretty(v).unwrap()),
        }
    }

    #[test]
    fn five_hundred_cases_validate() {
        for (i, v) in generate(7, 500).iter().enumerate() {
            let r = parse(v);
            assert_eq!(r.case_id.as_str(), format!("SYN-{i:05}"));
            assert!(r.intake_at <= r.updated_at);
            assert!(r.updated_at == NOW);
            assert!(NOW - r.intake_at <= Duration::days(10));
            if let Some(s) = r.safety_confirmed_at {
                assert!(r.intake_at <= s && s <= NOW, "{v}");
            }
            assert!(r.child.birth_date <= NOW.date());
            assert!(r.child.name_kana.as_ref().unwrap().chars().all(is_kana_char));
            if r.flags.missing {
                assert_eq!(r.safety_confirmed_at, None);
            }
            if matches!(r.status, Status::TemporaryProtection | Status::InCare) {
                assert_ne!(r.risk_level, Some(RiskLevel::Low));
            }
        }
    }

    #[test]
    fn many_seeds_validate() {
        for seed in 0..50 {
            for v in generate(seed, 40) {
                parse(&v);
            }
        }
    }

    #[test]
    fn same_seed_same_output() {
        assert_eq!(generate(42, 50), generate(42, 50));
        assert_ne!(generate(42, 50), generate(43, 50));
        let mut a = Synth::new(9);
        let mut b = Synth::new(9);
        let case = a.case("yokosuka", "c", "142018", 1, NOW);
        assert_eq!(case, b.case("yokosuka", "c", "142018", 1, NOW));
        let later = NOW + Duration::hours(3);
        assert_eq!(a.bump(&case, later), b.bump(&case, later));
    }

    #[test]
    fn names_are_consistent() {
        for v in generate(3, 300) {
            let r = parse(&v);
            let child_family = r.child.name.split('　').next().unwrap().to_owned();
            let child_kana = r.child.name_kana.clone().unwrap();
            let kana_family = child_kana.split('　').next().unwrap();
            let family_kana = FAMILY_NAMES
                .iter()
                .find(|(k, _)| *k == child_family)
                .map(|(_, kana)| *kana);
            assert_eq!(family_kana, Some(kana_family));
            for g in r.guardians.unwrap() {
                if g.relationship != Relationship::Partner {
                    assert!(g.name.starts_with(&child_family), "{}", g.name);
                    if let Some(k) = g.name_kana {
                        assert!(k.starts_with(kana_family));
                    }
                }
            }
        }
    }

    #[test]
    fn demo_addresses_and_phones() {
        let mut s = Synth::new(1);
        let v = s.case("yokohama-central", "a", "141046", 1, NOW);
        let text = v["child"]["address"]["text"].as_str().unwrap();
        assert!(text.starts_with("横浜市中区"), "{text}");
        let phone = v["center_contact"]["phone"].as_str().unwrap();
        assert!(phone.starts_with("045-") && phone.len() == 12, "{phone}");
        let v = s.case("kawasaki-central", "b", "141313", 1, NOW);
        assert!(
            v["child"]["address"]["text"]
                .as_str()
                .unwrap()
                .starts_with("川崎市川崎区")
        );
        assert!(v["center_contact"]["phone"].as_str().unwrap().starts_with("044-"));
        let v = s.case("other", "c", "131016", 1, NOW);
        parse(&v);
        assert!(v["center_contact"]["phone"].as_str().unwrap().starts_with("045-"));
    }

    #[test]
    fn distribution_is_plausible() {
        let cases: Vec<CaseRecord> = generate(11, 2000).iter().map(parse).collect();
        let count = |f: &dyn Fn(&CaseRecord) -> bool| cases.iter().filter(|c| f(c)).count();
        let dv = count(&|c| c.flags.dv);
        let missing = count(&|c| c.flags.missing);
        assert!((120..=280).contains(&dv), "dv {dv}");
        assert!((40..=170).contains(&missing), "missing {missing}");
        let overdue = |c: &CaseRecord| NOW - c.intake_at > Duration::hours(48);
        assert!(count(&|c| overdue(c) && c.safety_confirmed_at.is_none()) > 50);
        assert!(count(&|c| overdue(c) && c.safety_confirmed_at.is_some()) > 200);
        assert!(count(&|c| !overdue(c) && c.safety_confirmed_at.is_none()) > 20);
        for status in [
            Status::Intake,
            Status::Investigating,
            Status::TemporaryProtection,
            Status::InCare,
            Status::ReturnedHome,
            Status::Closed,
        ] {
            assert!(count(&|c| c.status == status) > 10, "{status:?}");
        }
    }

    #[test]
    fn bump_chains_validate() {
        let mut s = Synth::new(5);
        for (i, case) in generate(5, 100).into_iter().enumerate() {
            let mut case = case;
            let mut now = NOW;
            let first = parse(&case);
            let mut prev_status = first.status;
            for step in 1..=25u64 {
                now += Duration::hours(6);
                let next = s.bump(&case, now);
                let r = parse_at(&next, now);
                assert_eq!(r.version, first.version + step);
                assert_eq!(r.updated_at, now);
                assert_eq!(r.case_id, first.case_id);
                assert_eq!(r.child, first.child);
                assert_eq!(r.intake_at, first.intake_at);
                if let Some(t) = r.safety_confirmed_at {
                    assert!(r.intake_at <= t && t <= now);
                }
                if prev_status == Status::Closed {
                    assert_eq!(r.status, Status::Closed, "case {i}");
                }
                if r.flags.missing {
                    assert_eq!(r.safety_confirmed_at, None);
                }
                let progress = r.assessment.unwrap().progress.unwrap();
                assert!(progress.lines().count() <= MAX_PROGRESS_LINES);
                prev_status = r.status;
                case = next;
            }
        }
    }

    #[test]
    fn bump_now_and_then_reports_a_child_missing_which_raises_the_demo_alerts() {
        let mut s = Synth::new(11);
        let mut went_missing = 0;
        for case in generate(11, 100) {
            let mut case = case;
            for h in 1..=25 {
                let next = s.bump(&case, NOW + Duration::hours(h));
                if case["flags"]["missing"] == false && next["flags"]["missing"] == true {
                    went_missing += 1;
                    assert!(next["safety_confirmed_at"].is_null());
                }
                case = next;
            }
        }
        assert!(went_missing > 0);
    }

    #[test]
    fn bump_eventually_confirms_safety() {
        let mut s = Synth::new(8);
        let unconfirmed = generate(8, 400)
            .into_iter()
            .find(|v| v["safety_confirmed_at"].is_null() && v["flags"]["missing"] == true)
            .unwrap();
        let mut case = unconfirmed;
        for h in 1..=20 {
            case = s.bump(&case, NOW + Duration::hours(h));
        }
        let r = parse_at(&case, NOW + Duration::hours(20));
        assert!(r.safety_confirmed_at.is_some());
        assert!(!r.flags.missing);
    }

    #[test]
    fn bump_tolerates_sparse_and_foreign_input() {
        let mut s = Synth::new(2);
        assert_eq!(s.bump(&json!([1]), NOW), json!([1]));
        let minimal = json!({
            "case_id": "c1", "center_id": "yokosuka", "version": 1,
            "updated_at": "2026-03-01T00:00:00Z",
            "child": { "name": "名無し", "sex": "unknown", "birth_date": "2020-02-29",
                       "address": { "municipality_code": "142018" } },
            "abuse": { "types": ["neglect"], "injury": false },
            "status": "intake", "intake_at": "2026-03-01T00:00:00Z",
            "flags": { "dv": false, "missing": false }, "assessment": null
        });
        let r = parse(&s.bump(&minimal, NOW));
        assert_eq!(r.version, 2);
        assert!(r.assessment.unwrap().progress.is_some());
        let mut long = minimal.clone();
        long["assessment"] = json!({ "progress": "あ".repeat(10_000) });
        let r = parse(&s.bump(&long, NOW));
        assert!(r.assessment.unwrap().progress.unwrap().chars().count() <= MAX_PROGRESS_CHARS);
        let mut top = minimal;
        top["version"] = json!(MAX_VERSION);
        assert_eq!(parse(&s.bump(&top, NOW)).version, MAX_VERSION);
    }

    #[test]
    fn extreme_now_still_yields_valid_dates() {
        let mut s = Synth::new(4);
        for now in [datetime!(1901-06-01 00:00 UTC), datetime!(2999-12-31 23:59:59 UTC)] {
            for _ in 0..20 {
                parse_at(&s.case("yokosuka", "x", "142018", 1, now), now);
            }
        }
    }
}
