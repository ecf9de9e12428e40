//! A subject's border crossings over the last few years. Trips are laid out in disjoint windows of the
//! period so they never overlap and the crossings come out in date order. Residents (nationals, UI
//! holders) leave and come back; travellers come and leave.

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Draw, Profile, SubjectKind};

const AIRPORTS: &[(&str, &str)] = &[
    ("TPE", "臺灣桃園國際機場"),
    ("TSA", "臺北松山機場"),
    ("KHH", "高雄國際機場"),
    ("RMQ", "臺中國際機場"),
    ("TNN", "臺南機場"),
    ("KNH", "金門尚義機場"),
];
/// Seaports by UN/LOCODE.
const SEAPORTS: &[(&str, &str)] =
    &[("TWKEL", "基隆港"), ("TWKHH", "高雄港"), ("TWTXG", "臺中港"), ("TWHUN", "花蓮港"), ("TWKNH", "金門水頭港")];
const AIRLINES: &[&str] = &["BR", "CI", "JX", "IT", "CX", "JL", "VN", "5J", "OZ"];
/// Ferry and cruise operators; voyages are numbered `<operator>-V<nnn>`.
const SHIPPING: &[&str] = &["LNA", "TMS", "GDS", "CST", "WSF"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Entry,
    Exit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Air,
    Sea,
}

/// One crossing of the border.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Crossing {
    pub direction: Direction,
    pub date: NaiveDate,
    pub transport: Transport,
    /// IATA code for airports (`TPE`), UN/LOCODE for seaports (`TWKEL`).
    #[schema(example = "TPE")]
    pub port_code: String,
    #[schema(example = "臺灣桃園國際機場")]
    pub port_name: String,
    /// Flight number (`BR0012`) or vessel voyage number (`GDS-V118`).
    #[schema(example = "BR0012")]
    pub carrier_number: String,
    /// The travel document shown at the border (not an approved item of any query type).
    pub travel_document_number: String,
}

/// Every crossing on record from `from` to `to`, and where the subject is now.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub crossings: Vec<Crossing>,
    pub currently_in_taiwan: bool,
}

impl History {
    /// Two to six years back. About one resident in four has not travelled at all; travellers with
    /// no visit on record are unknown to the agency.
    pub fn of(profile: &Profile) -> Self {
        let mut draw = Draw::new(&profile.subject_id, "travel");
        let years = 2 + draw.below(5) as i64;
        let visitor = profile.kind == SubjectKind::Traveller;
        let per_year = if visitor { draw.pick(&[0, 1, 1, 1, 2, 2, 3]) } else { draw.pick(&[0, 0, 1, 1, 2, 2, 3, 4]) };
        let to = profile.today;
        let from = to - Duration::days(365 * years);
        let trips = (per_year * years as usize).min(24);
        let crossings = lay_out(&mut draw, profile, from, to, trips);
        // A resident with no crossing never left; a traveller with none never came.
        let currently_in_taiwan = crossings.last().map_or(!visitor, |c| c.direction == Direction::Entry);
        Self { from, to, crossings, currently_in_taiwan }
    }

    /// The crossings from `from` on: the same trips, cut to a shorter period.
    pub fn since(&self, from: NaiveDate) -> Self {
        let crossings = self.crossings.iter().filter(|c| c.date >= from).cloned().collect();
        Self { from, to: self.to, crossings, currently_in_taiwan: self.currently_in_taiwan }
    }
}

/// `trips` trips, each in its own window of the period: it starts in the window's first half and
/// lasts at most half a window. A trip whose second crossing would fall after `to` is still under way.
fn lay_out(draw: &mut Draw, profile: &Profile, from: NaiveDate, to: NaiveDate, trips: usize) -> Vec<Crossing> {
    let span = (to - from).num_days();
    let window = span / (trips as i64).max(1);
    let (first, second) = match profile.kind {
        SubjectKind::Traveller => (Direction::Entry, Direction::Exit),
        _ => (Direction::Exit, Direction::Entry),
    };
    let max_length = if profile.kind == SubjectKind::Traveller { 30 } else { 21 };
    let mut crossings = Vec::with_capacity(trips * 2);
    for trip in 0..trips {
        let start = from + Duration::days(trip as i64 * window) + draw.days(0, window / 2 - 1);
        let back = start + draw.days(1, max_length.min(window / 2));
        let (out, home) = legs(draw, &profile.passport_number);
        crossings.push(out.at(first, start));
        if back <= to {
            crossings.push(home.at(second, back));
        }
    }
    crossings
}

/// How a trip crosses: port and carrier, fixed per leg.
struct Leg {
    transport: Transport,
    port: (&'static str, &'static str),
    carrier_number: String,
    document: String,
}

impl Leg {
    fn at(self, direction: Direction, date: NaiveDate) -> Crossing {
        Crossing {
            direction,
            date,
            transport: self.transport,
            port_code: self.port.0.to_owned(),
            port_name: self.port.1.to_owned(),
            carrier_number: self.carrier_number,
            travel_document_number: self.document,
        }
    }
}

/// The two legs of a trip: about one trip in six by sea (ferries and cruises), the rest by air; the
/// way back may use another port, the same carrier with the next flight or voyage number.
fn legs(draw: &mut Draw, document: &str) -> (Leg, Leg) {
    let sea = draw.one_in(6);
    let (ports, operators, transport) =
        if sea { (SEAPORTS, SHIPPING, Transport::Sea) } else { (AIRPORTS, AIRLINES, Transport::Air) };
    let (out_port, home_port) = (draw.pick(ports), draw.pick(ports));
    let operator = draw.pick(operators);
    let number = 10 + draw.below(980);
    let carrier_number = |n: u64| if sea { format!("{operator}-V{n:03}") } else { format!("{operator}{n:04}") };
    let leg = |port, n| Leg { transport, port, carrier_number: carrier_number(n), document: document.to_owned() };
    (leg(out_port, number), leg(home_port, number + 1))
}
