//! Resource nodes: where jobs run, and what drives their cost.

use super::pricing::{CoolingPlant, PowerProfile};
use serde::{Deserialize, Serialize};

/// Why a node definition was refused: names the field and the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("node `{node}`: field `{field}` = {value}: {problem}")]
pub struct NodeError {
    pub node: String,
    pub field: &'static str,
    pub value: String,
    pub problem: String,
}

/// A site with leased compute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub region: String,
    pub lat: f64,
    pub lon: f64,
    /// Compute units (vCPU-equivalents) at full capacity.
    pub capacity_units: u32,
    #[serde(default)]
    pub power: PowerProfile,
    /// Lease, hardware and staff cost per compute-hour, before energy.
    pub non_energy_usd_per_chr: f64,
    /// Markup on cost, e.g. 0.1 for 10 %.
    #[serde(default)]
    pub margin: f64,
    #[serde(default)]
    pub cooling: CoolingPlant,
    /// Energy market and zone, e.g. `pjm:DOM`, `ercot:NORTH`, `entsoe:DE-LU`.
    pub market: String,
    /// The real weather and price sources that feed this node (none: only generated or
    /// replayed signals).
    #[serde(default, skip_serializing_if = "NodeSources::is_empty")]
    pub sources: NodeSources,
}

/// Weather providers a node can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeatherProvider {
    /// Open-Meteo forecast API (worldwide).
    OpenMeteo,
    /// US National Weather Service (api.weather.gov, US locations only).
    Nws,
}

/// Price providers a node can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PriceProvider {
    /// Energy-Charts day-ahead prices per European bidding zone (EUR/MWh).
    EnergyCharts,
    /// NYISO day-ahead zonal LBMP.
    NyisoDayAhead,
    /// NYISO real-time zonal LBMP.
    NyisoRealTime,
}

/// Which real sources feed a node, e.g.
/// `{"weather": "open-meteo", "prices": "energy-charts", "price_zone": "DE-LU"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weather: Option<WeatherProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prices: Option<PriceProvider>,
    /// The price zone as the provider names it (`DE-LU`, `N.Y.C.`); default: the part of
    /// `market` after the colon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_zone: Option<String>,
    /// NWS observation station (e.g. `KIAD`); default: the nearest one the API lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub station: Option<String>,
}

impl NodeSources {
    pub fn is_empty(&self) -> bool {
        *self == NodeSources::default()
    }
}

impl Node {
    pub fn validate(&self) -> Result<(), NodeError> {
        let err = |field: &'static str, value: String, problem: &str| NodeError {
            node: self.id.clone(),
            field,
            value,
            problem: problem.to_string(),
        };
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !id_ok {
            return Err(err(
                "id",
                format!("{:?}", self.id),
                "must be 1-64 letters, digits or -_.",
            ));
        }
        if self.region.is_empty() || self.region.len() > 64 {
            return Err(err(
                "region",
                format!("{:?}", self.region),
                "must be 1-64 characters",
            ));
        }
        if !(-90.0..=90.0).contains(&self.lat) {
            return Err(err("lat", self.lat.to_string(), "must be -90..90"));
        }
        if !(-180.0..=180.0).contains(&self.lon) {
            return Err(err("lon", self.lon.to_string(), "must be -180..180"));
        }
        if self.capacity_units == 0 {
            return Err(err("capacity_units", "0".into(), "must be at least 1"));
        }
        if !(self.non_energy_usd_per_chr.is_finite() && self.non_energy_usd_per_chr >= 0.0) {
            return Err(err(
                "non_energy_usd_per_chr",
                self.non_energy_usd_per_chr.to_string(),
                "must be a finite number >= 0",
            ));
        }
        if !(self.margin.is_finite() && (0.0..=10.0).contains(&self.margin)) {
            return Err(err("margin", self.margin.to_string(), "must be 0..10"));
        }
        if self.market.is_empty() {
            return Err(err("market", "\"\"".into(), "must name the energy market"));
        }
        if let Some(z) = &self.sources.price_zone {
            let ok = !z.trim().is_empty()
                && z.len() <= 64
                && z.chars().all(|c| c.is_ascii_graphic() || c == ' ');
            if !ok {
                return Err(err(
                    "sources.price_zone",
                    format!("{z:?}"),
                    "must be 1-64 printable characters",
                ));
            }
        }
        if let Some(st) = &self.sources.station {
            if st.is_empty() || st.len() > 16 || !st.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(err(
                    "sources.station",
                    format!("{st:?}"),
                    "must be a station identifier of 1-16 letters and digits",
                ));
            }
        }
        self.power
            .validate()
            .map_err(|e| err("power", e.value.clone(), &e.to_string()))?;
        self.cooling
            .validate()
            .map_err(|e| err("cooling", e.value.clone(), &e.to_string()))?;
        Ok(())
    }

    /// The price zone real sources ask for: `sources.price_zone`, else the part of `market`
    /// after the colon (all of it when there is none).
    pub fn price_zone(&self) -> String {
        match &self.sources.price_zone {
            Some(z) => z.trim().to_string(),
            None => self
                .market
                .split_once(':')
                .map_or(self.market.as_str(), |(_, z)| z)
                .trim()
                .to_string(),
        }
    }

    /// The market operator part of `market` (before the colon), lower-case.
    pub fn market_operator(&self) -> String {
        self.market
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    }
}

/// Power of one accelerator unit (a data-center GPU with its share of host): 90 W idle,
/// 700 W at full load (an H100 SXM's TDP), 128 GB of host memory, busy at 85 %.
pub fn accelerator_power() -> PowerProfile {
    PowerProfile {
        w_min: 90.0,
        w_max: 700.0,
        utilisation: 0.85,
        mem_gb: 128.0,
    }
}

/// The default fleet: owned accelerator sites in several regions and markets, with plants
/// typical of each. A unit is one accelerator; the non-energy cost is the marginal cost of
/// running it for an hour (colocation, maintenance, network), so energy is the larger,
/// moving part of the price, as it is for such fleets.
pub fn default_fleet(n: usize) -> Vec<Node> {
    // id, name, region, lat, lon, market, non-energy USD per unit-hour, air-cooled
    type Site = (
        &'static str,
        &'static str,
        &'static str,
        f64,
        f64,
        &'static str,
        f64,
        bool,
    );
    let sites: [Site; 8] = [
        (
            "ash1", "Ashburn", "us-east", 39.04, -77.49, "pjm:DOM", 0.024, false,
        ),
        (
            "dfw1",
            "Dallas",
            "us-south",
            32.78,
            -96.80,
            "ercot:NORTH",
            0.021,
            true,
        ),
        (
            "fra1",
            "Frankfurt",
            "eu-central",
            50.11,
            8.68,
            "entsoe:DE-LU",
            0.026,
            false,
        ),
        (
            "par1",
            "Paris",
            "eu-west",
            48.86,
            2.35,
            "entsoe:FR",
            0.025,
            false,
        ),
        (
            "lla1",
            "Lulea",
            "eu-north",
            65.58,
            22.15,
            "nordpool:SE1",
            0.027,
            false,
        ),
        (
            "phx1",
            "Phoenix",
            "us-west",
            33.45,
            -112.07,
            "caiso:SP15",
            0.022,
            true,
        ),
        (
            "chi1",
            "Chicago",
            "us-central",
            41.88,
            -87.63,
            "pjm:COMED",
            0.023,
            false,
        ),
        (
            "ams1",
            "Amsterdam",
            "eu-west",
            52.37,
            4.90,
            "entsoe:NL",
            0.025,
            false,
        ),
    ];
    (0..n)
        .map(|i| {
            let (id, name, region, lat, lon, market, cost, air) = sites[i % sites.len()];
            let round = i / sites.len();
            let (id, name) = if round == 0 {
                (id.to_string(), name.to_string())
            } else {
                (
                    format!("{id}-{}", round + 1),
                    format!("{name} {}", round + 1),
                )
            };
            Node {
                id,
                name,
                region: region.to_string(),
                // Extra rounds sit a little apart so each has its own weather.
                lat: lat + 0.3 * round as f64,
                lon: lon + 0.3 * round as f64,
                capacity_units: 64 + 32 * (i % 3) as u32,
                power: accelerator_power(),
                non_energy_usd_per_chr: cost,
                margin: 0.08,
                cooling: if air {
                    CoolingPlant::air_cooled_legacy()
                } else {
                    CoolingPlant::default()
                },
                market: market.to_string(),
                sources: NodeSources::default(),
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_fleet_is_valid_and_unique() {
        let fleet = default_fleet(20);
        let mut ids: Vec<_> = fleet.iter().map(|n| n.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 20);
        for n in &fleet {
            n.validate().unwrap();
        }
        let regions: std::collections::BTreeSet<_> =
            default_fleet(6).into_iter().map(|n| n.region).collect();
        assert!(regions.len() >= 5);
    }

    #[test]
    fn validation_names_the_field() {
        let mut n = default_fleet(1).remove(0);
        n.lat = 91.0;
        let e = n.validate().unwrap_err();
        assert_eq!(e.field, "lat");
        assert!(e.to_string().contains("91"));
        let mut n = default_fleet(1).remove(0);
        n.capacity_units = 0;
        assert_eq!(n.validate().unwrap_err().field, "capacity_units");
        let mut n = default_fleet(1).remove(0);
        n.id = "a b".into();
        assert_eq!(n.validate().unwrap_err().field, "id");
    }

    #[test]
    fn node_config_round_trips_json_with_defaults() {
        let json = r#"{"id":"x1","name":"X","region":"r","lat":1,"lon":2,"capacity_units":8,
            "non_energy_usd_per_chr":0.01,"market":"pjm:DOM"}"#;
        let n: Node = serde_json::from_str(json).unwrap();
        n.validate().unwrap();
        assert_eq!(n.market_operator(), "pjm");
        let back: Node = serde_json::from_str(&serde_json::to_string(&n).unwrap()).unwrap();
        assert_eq!(back, n);
        assert!(n.sources.is_empty());
        assert!(!serde_json::to_string(&n).unwrap().contains("sources"));
    }

    #[test]
    fn node_sources_parse_and_are_checked() {
        let json = r#"{"id":"fra1","name":"F","region":"eu","lat":50.1,"lon":8.7,"capacity_units":8,
            "non_energy_usd_per_chr":0.01,"market":"entsoe:DE-LU",
            "sources":{"weather":"open-meteo","prices":"energy-charts"}}"#;
        let n: Node = serde_json::from_str(json).unwrap();
        n.validate().unwrap();
        assert_eq!(n.sources.weather, Some(WeatherProvider::OpenMeteo));
        assert_eq!(n.sources.prices, Some(PriceProvider::EnergyCharts));
        assert_eq!(n.price_zone(), "DE-LU");
        let back: Node = serde_json::from_str(&serde_json::to_string(&n).unwrap()).unwrap();
        assert_eq!(back, n);
        let bad = json.replace("energy-charts", "spot-magic");
        let e = serde_json::from_str::<Node>(&bad).unwrap_err().to_string();
        assert!(e.contains("spot-magic"), "{e}");
        let bad = json.replace(r#""prices""#, r#""pricez""#);
        assert!(serde_json::from_str::<Node>(&bad).is_err());
        let mut n2 = n.clone();
        n2.sources.weather = Some(WeatherProvider::Nws);
        n2.validate().unwrap();
        n2.sources.price_zone = Some("N.Y.C.".into());
        assert_eq!(n2.price_zone(), "N.Y.C.");
        n2.sources.station = Some("K IAD".into());
        assert_eq!(n2.validate().unwrap_err().field, "sources.station");
    }
}
